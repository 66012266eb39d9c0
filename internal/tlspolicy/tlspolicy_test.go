package tlspolicy

import (
	"crypto/tls"
	"testing"
)

func TestEnforce(t *testing.T) {
	if Enforce(nil) != nil {
		t.Error("Enforce(nil) != nil")
	}
	for _, tc := range []struct {
		name      string
		min, want uint16
	}{
		{"unset", 0, tls.VersionTLS12},
		{"TLS 1.0", tls.VersionTLS10, tls.VersionTLS12},
		{"TLS 1.1", tls.VersionTLS11, tls.VersionTLS12},
		{"TLS 1.2 kept", tls.VersionTLS12, tls.VersionTLS12},
		{"TLS 1.3 kept", tls.VersionTLS13, tls.VersionTLS13},
	} {
		in := &tls.Config{MinVersion: tc.min}
		got := Enforce(in)
		if got.MinVersion != tc.want {
			t.Errorf("%s: MinVersion = %x, want %x", tc.name, got.MinVersion, tc.want)
		}
		if in.MinVersion != tc.min {
			t.Errorf("%s: Enforce changed the caller's config", tc.name)
		}
	}
}
