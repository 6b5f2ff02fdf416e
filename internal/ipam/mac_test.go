package ipam

import (
	"math/rand/v2"
	"testing"

	"pgregory.net/rapid"
)

func TestValidateMAC(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"fa:16:3e:00:00:01", "fa:16:3e:00:00:01"},
		{"FA:16:3E:AB:CD:EF", "fa:16:3e:ab:cd:ef"},
		{"fa-16-3e-ab-cd-ef", "fa:16:3e:ab:cd:ef"},
		{"fa16.3eab.cdef", "fa:16:3e:ab:cd:ef"},
		{"02:00:00:00:00:00", "02:00:00:00:00:00"},
		{"00:00:00:00:00:01", "00:00:00:00:00:01"},
		{"00:00:00:00:00:00", ""},
		{"ff:ff:ff:ff:ff:ff", ""},
		{"FF:FF:FF:FF:FF:FF", ""},
		{"01:00:5e:00:00:01", ""}, // multicast
		{"33:33:00:00:00:01", ""}, // IPv6 multicast
		{"fa:16:3e:00:00", ""},
		{"fa:16:3e:00:00:01:02:03", ""},
		{"fa:16:3e:00:00:0g", ""},
		{" fa:16:3e:00:00:01", ""},
		{"", ""},
	} {
		m, err := ValidateMAC(tc.in)
		if tc.want == "" {
			wantErr(t, err, TypeBadRequest, "'"+tc.in+"' is not a valid MAC address")
			continue
		}
		if err != nil || m.String() != tc.want {
			t.Errorf("ValidateMAC(%q) = %v, %v; want %s", tc.in, m, err, tc.want)
		}
	}
}

func TestRandomMAC(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 100 {
		m, err := RandomMAC(DefaultBaseMAC, rng)
		if err != nil || m[0] != 0xfa || m[1] != 0x16 || m[2] != 0x3e {
			t.Fatalf("RandomMAC(default) = %v, %v", m, err)
		}
		m, err = RandomMAC("fa:16:3e:4f:00:00", rng)
		if err != nil || m[3] != 0x4f || m[0] != 0xfa {
			t.Fatalf("RandomMAC(4th octet) = %v, %v", m, err)
		}
	}
	seen := map[string]bool{}
	for range 1000 {
		m, _ := RandomMAC(DefaultBaseMAC, rng)
		seen[m.String()] = true
	}
	if len(seen) < 990 {
		t.Errorf("only %d distinct MACs of 1000", len(seen))
	}
	for _, bad := range []string{"", "fa:16:3e", "zz:16:3e:00:00:00", "01:00:5e:00:00:00", "fa:16:3e:00:00:00:00:00"} {
		if _, err := RandomMAC(bad, rng); err == nil {
			t.Errorf("RandomMAC(%q) succeeded", bad)
		}
	}
}

// Generated MACs always validate and keep the base prefix.
func TestRandomMACProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		b := rapid.SliceOfN(rapid.Byte(), 6, 6).Draw(t, "base")
		b[0] &^= 1 // unicast base
		base := fmtMAC(b)
		rng := rand.New(rand.NewPCG(rapid.Uint64().Draw(t, "seed"), 1))
		m, err := RandomMAC(base, rng)
		if err != nil {
			t.Fatal(err)
		}
		if m[0] != b[0] || m[1] != b[1] || m[2] != b[2] || (b[3] != 0 && m[3] != b[3]) {
			t.Fatalf("RandomMAC(%s) = %s", base, m)
		}
		if m.String() == "00:00:00:00:00:00" {
			return // all-zero base and all-zero draw: astronomically rare, but not valid
		}
		if _, err := ValidateMAC(m.String()); err != nil {
			t.Fatalf("RandomMAC(%s) = %s does not validate: %v", base, m, err)
		}
	})
}

func fmtMAC(b []byte) string {
	const hexd = "0123456789abcdef"
	out := make([]byte, 0, 17)
	for i, x := range b {
		if i > 0 {
			out = append(out, ':')
		}
		out = append(out, hexd[x>>4], hexd[x&15])
	}
	return string(out)
}
