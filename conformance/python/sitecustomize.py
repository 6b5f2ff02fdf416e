# Python loads this module at start-up when its directory is on PYTHONPATH,
# which conformance/run.sh arranges for Tempest only with
# SKIP_SUBNET_DELETE_SLEEP=1.
#
# Debian's tempest 33 carries a patch (add-delay-in-subnet-teardown.patch)
# that makes SubnetsClient.delete_subnet sleep 10 s first, to give Neutron's
# agents time to release their ports; upstream Tempest has no such sleep and
# no option turns it off. neutrino deletes synchronously, and with hundreds
# of subnets per run the sleeps are most of the run's time. This drops that
# one sleep in the running process; no file on disk changes, and no other
# sleep of Tempest is touched.
import importlib.abc
import importlib.machinery
import sys
import time

_TARGET = "tempest.lib.services.network.subnets_client"


class _TimeWithoutSleep:
    """The time module as the subnets client sees it, with sleep a no-op."""

    def __getattr__(self, name):
        return getattr(time, name)

    @staticmethod
    def sleep(seconds):
        pass


class _Loader(importlib.abc.Loader):
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        module.time = _TimeWithoutSleep()


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname != _TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader)
        return spec


sys.meta_path.insert(0, _Finder())
