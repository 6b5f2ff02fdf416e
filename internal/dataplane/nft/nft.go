// Package nft owns the nftables tables (family ip) that agent roles keep
// in network namespaces: running a transaction inside a namespace,
// replacing a table whole in one transaction, telling whether a table is
// in place, and the rule matches more than one role uses.
package nft

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/neutrino-sdn/neutrino/internal/dataplane/netns"
)

// Do runs fn with an nftables connection into namespace ns.
func Do(ns string, fn func(*nftables.Conn) error) error {
	fd, err := unix.Open(netns.Path(ns), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("nft: open namespace %s: %w", ns, err)
	}
	defer unix.Close(fd)
	c, err := nftables.New(nftables.WithNetNSFd(fd))
	if err != nil {
		return fmt.Errorf("nft: nftables in %s: %w", ns, err)
	}
	return fn(c)
}

// Replace makes table name of namespace ns hold exactly what build adds
// to it, in one transaction: the table is deleted and made again, so at
// no moment is a half-built table in use. With build nil the table is
// only deleted (if it was there).
func Replace(ns, name string, build func(c *nftables.Conn, table *nftables.Table)) error {
	return Do(ns, func(c *nftables.Conn) error {
		table := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: name}
		// Added first so that the delete has something to delete.
		c.AddTable(table)
		c.DelTable(table)
		if build != nil {
			c.AddTable(table)
			build(c, table)
		}
		if err := c.Flush(); err != nil {
			return fmt.Errorf("nft: table %s in %s: %w", name, ns, err)
		}
		return nil
	})
}

// InPlace tells whether namespace ns holds table name with exactly
// chains[ch] rules in each chain ch, judged by the counts alone; with no
// chains, whether ns holds no such table.
func InPlace(ns, name string, chains map[string]int) (bool, error) {
	var ok bool
	err := Do(ns, func(c *nftables.Conn) error {
		table, err := c.ListTableOfFamily(name, nftables.TableFamilyIPv4)
		if err != nil {
			ok = len(chains) == 0 // no such table
			return nil
		}
		if len(chains) == 0 {
			return nil
		}
		for ch, n := range chains {
			got, err := c.GetRules(table, &nftables.Chain{Name: ch, Table: table})
			if err != nil || len(got) != n {
				return nil
			}
		}
		ok = true
		return nil
	})
	return ok, err
}

// ipsDstNAT is conntrack's IPS_DST_NAT status bit.
const ipsDstNAT = 1 << 5

// MatchDNATed matches packets of connections whose destination was
// translated (ct status dnat).
func MatchDNATed() []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeySTATUS, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(ipsDstNAT), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}
