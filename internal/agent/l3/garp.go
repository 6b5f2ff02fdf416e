package l3

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/neutrino-sdn/neutrino/internal/dataplane/netns"
)

// gratuitousARP announces that addr is at mac on dev of namespace ns: one
// broadcast ARP request whose sender and target are both addr (as
// `arping -U` sends), so neighbours update their caches when a floating IP
// is added or moves to this router.
func gratuitousARP(ns, dev string, mac net.HardwareAddr, addr netip.Addr) error {
	frame := garpFrame(mac, addr)
	return netns.Do(ns, func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return fmt.Errorf("l3: gratuitous ARP for %s: %w", addr, err)
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ARP)))
		if err != nil {
			return fmt.Errorf("l3: gratuitous ARP for %s: %w", addr, err)
		}
		defer unix.Close(fd)
		to := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: ifi.Index, Halen: 6}
		copy(to.Addr[:], broadcast)
		if err := unix.Sendto(fd, frame, 0, to); err != nil {
			return fmt.Errorf("l3: gratuitous ARP for %s on %s in %s: %w", addr, dev, ns, err)
		}
		return nil
	})
}

var broadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// garpFrame is the Ethernet frame of a gratuitous ARP request.
func garpFrame(mac net.HardwareAddr, addr netip.Addr) []byte {
	ip := addr.As4()
	f := make([]byte, 0, 42)
	f = append(f, broadcast...)
	f = append(f, mac...)
	f = binary.BigEndian.AppendUint16(f, unix.ETH_P_ARP)
	f = binary.BigEndian.AppendUint16(f, 1)             // hardware type Ethernet
	f = binary.BigEndian.AppendUint16(f, unix.ETH_P_IP) // protocol IPv4
	f = append(f, 6, 4)                                 // address lengths
	f = binary.BigEndian.AppendUint16(f, 1)             // request
	f = append(f, mac...)
	f = append(f, ip[:]...)
	f = append(f, make([]byte, 6)...) // target MAC unknown
	return append(f, ip[:]...)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
