package link

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ethtoolValue is the kernel's struct ethtool_value.
type ethtoolValue struct {
	cmd  uint32
	data uint32
}

// ifreqData is the kernel's struct ifreq with ifr_data set: a name followed
// by a 24-byte union whose first member is a pointer.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [24 - unsafe.Sizeof(uintptr(0))]byte
}

// ethtool issues one SIOCETHTOOL ioctl for name on the handle's socket,
// which lives in the handle's namespace.
func (h *Handle) ethtool(name string, value *ethtoolValue) error {
	if len(name) >= unix.IFNAMSIZ {
		return fmt.Errorf("interface name %q too long", name)
	}
	var ifr ifreqData
	copy(ifr.name[:], name)
	ifr.data = unsafe.Pointer(value)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(h.ioctlFD), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(value)
	if errno != 0 {
		return fmt.Errorf("ethtool command %#x: %w", value.cmd, errno)
	}
	return nil
}

func (h *Handle) ethtoolValue(name string, cmd, data uint32) error {
	return h.ethtool(name, &ethtoolValue{cmd: cmd, data: data})
}

func (h *Handle) ethtoolGet(name string, cmd uint32, out *uint32) error {
	v := ethtoolValue{cmd: cmd}
	if err := h.ethtool(name, &v); err != nil {
		return err
	}
	*out = v.data
	return nil
}
