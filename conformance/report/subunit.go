package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"unicode/utf8"
)

// The subunit v2 protocol, as stestr stores Tempest's results: a stream of
// packets, each a signature byte, 16 bits of flags, a variable-length packet
// length, the fields the flags announce, and a CRC32 of all of it.
const (
	subunitSignature = 0xb3
	subunitVersion2  = 0x2

	flagTestID      = 0x0800
	flagRouteCode   = 0x0400
	flagTimestamp   = 0x0200
	flagRunnable    = 0x0100
	flagTags        = 0x0080
	flagFileContent = 0x0040
	flagMIMEType    = 0x0020
	flagEOF         = 0x0010
	statusMask      = 0x0007
)

// Test statuses, indexed by the low three bits of a packet's flags.
var subunitStatuses = [8]string{"", "exists", "inprogress", "success", "uxsuccess", "skip", "fail", "xfail"}

// Event is one subunit packet: a status change of a test and/or a piece of
// an attachment (a skip reason, a traceback, captured logs).
type Event struct {
	TestID    string
	Status    string // "" when the packet carries no status
	Tags      []string
	FileName  string
	FileBytes []byte
	EOF       bool
}

// ReadSubunit calls fn for each packet of the subunit v2 stream r. Bytes
// between packets that are not subunit (stray output) are skipped.
func ReadSubunit(r io.Reader, fn func(Event) error) error {
	br := bufio.NewReader(r)
	for n := 0; ; n++ {
		b, err := br.ReadByte()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("subunit: read: %w", err)
		}
		if b != subunitSignature {
			continue
		}
		ev, err := readPacket(br)
		if err != nil {
			return fmt.Errorf("subunit: packet %d: %w", n, err)
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
}

// readPacket reads one packet whose signature byte has been read.
func readPacket(br *bufio.Reader) (Event, error) {
	var head [2]byte
	if _, err := io.ReadFull(br, head[:]); err != nil {
		return Event{}, fmt.Errorf("flags: %w", err)
	}
	flags := binary.BigEndian.Uint16(head[:])
	if v := flags >> 12; v != subunitVersion2 {
		return Event{}, fmt.Errorf("version %d, want %d", v, subunitVersion2)
	}
	length, lenBytes, err := readVarint(br)
	if err != nil {
		return Event{}, fmt.Errorf("length: %w", err)
	}
	if len(lenBytes) > 3 {
		return Event{}, errors.New("packet length longer than 3 bytes")
	}
	headLen := 1 + 2 + len(lenBytes)
	if int(length) < headLen+4 {
		return Event{}, fmt.Errorf("packet length %d too short", length)
	}
	rest := make([]byte, int(length)-headLen)
	if _, err := io.ReadFull(br, rest); err != nil {
		return Event{}, fmt.Errorf("body: %w", err)
	}
	body, sum := rest[:len(rest)-4], binary.BigEndian.Uint32(rest[len(rest)-4:])
	crc := crc32.NewIEEE()
	crc.Write([]byte{subunitSignature})
	crc.Write(head[:])
	crc.Write(lenBytes)
	crc.Write(body)
	if crc.Sum32() != sum {
		return Event{}, fmt.Errorf("bad checksum %#x, computed %#x", sum, crc.Sum32())
	}

	p := &packetReader{buf: body}
	ev := Event{Status: subunitStatuses[flags&statusMask], EOF: flags&flagEOF != 0}
	if flags&flagTimestamp != 0 {
		p.skip(4) // seconds
		p.varint()
	}
	if flags&flagTestID != 0 {
		ev.TestID = p.str()
	}
	if flags&flagTags != 0 {
		for n := p.varint(); n > 0 && p.err == nil; n-- {
			ev.Tags = append(ev.Tags, p.str())
		}
	}
	if flags&flagMIMEType != 0 {
		p.str()
	}
	if flags&flagFileContent != 0 {
		ev.FileName = p.str()
		ev.FileBytes = p.bytes(p.varint())
	}
	if flags&flagRouteCode != 0 {
		p.str()
	}
	if p.err != nil {
		return Event{}, p.err
	}
	return ev, nil
}

// readVarint reads a subunit number: the top two bits of the first byte say
// how many more bytes follow (0-3), big-endian after the first byte's six
// bits. It returns the bytes read too, for the checksum.
func readVarint(br *bufio.Reader) (uint32, []byte, error) {
	first, err := br.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	raw := []byte{first}
	v := uint32(first & 0x3f)
	for range int(first >> 6) {
		b, err := br.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		raw = append(raw, b)
		v = v<<8 | uint32(b)
	}
	return v, raw, nil
}

// packetReader decodes the fields of a packet body; the first error sticks.
type packetReader struct {
	buf []byte
	err error
}

func (p *packetReader) bytes(n uint32) []byte {
	if p.err != nil {
		return nil
	}
	if uint64(n) > uint64(len(p.buf)) {
		p.err = fmt.Errorf("field of %d bytes runs past the packet's end", n)
		return nil
	}
	out := p.buf[:n]
	p.buf = p.buf[n:]
	return out
}

func (p *packetReader) skip(n uint32) { p.bytes(n) }

func (p *packetReader) varint() uint32 {
	if p.err != nil {
		return 0
	}
	if len(p.buf) == 0 {
		p.err = errors.New("number runs past the packet's end")
		return 0
	}
	extra := int(p.buf[0] >> 6)
	if len(p.buf) < 1+extra {
		p.err = errors.New("number runs past the packet's end")
		return 0
	}
	v := uint32(p.buf[0] & 0x3f)
	for _, b := range p.buf[1 : 1+extra] {
		v = v<<8 | uint32(b)
	}
	p.buf = p.buf[1+extra:]
	return v
}

func (p *packetReader) str() string {
	b := p.bytes(p.varint())
	if p.err == nil && !utf8.Valid(b) {
		p.err = errors.New("string is not UTF-8")
	}
	return string(b)
}
