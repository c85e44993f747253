package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// writeCert writes a self-signed certificate and its key as PEM files in
// dir and returns their names.
func writeCert(t *testing.T, dir, name string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = filepath.Join(dir, name+".crt")
	keyFile = filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestTLSConfig(t *testing.T) {
	dir := t.TempDir()
	caFile, _ := writeCert(t, dir, "ca")
	certFile, keyFile := writeCert(t, dir, "client")
	_, otherKeyFile := writeCert(t, dir, "other")

	t.Run("disabled", func(t *testing.T) {
		c, err := TLS{CAFile: "ignored", CertFile: "ignored"}.Config()
		if c != nil || err != nil {
			t.Errorf("Config() = %v, %v; want nil, nil", c, err)
		}
	})

	t.Run("enabled", func(t *testing.T) {
		tl := TLS{Enabled: true, CAFile: caFile, CertFile: certFile, KeyFile: keyFile, ServerName: "ch.internal", InsecureSkipVerify: true}
		c, err := tl.Config()
		if err != nil {
			t.Fatal(err)
		}
		if c.RootCAs == nil || len(c.Certificates) != 1 || c.ServerName != "ch.internal" || !c.InsecureSkipVerify {
			t.Errorf("Config() = %+v", c)
		}

		// Load accepts the same through the environment.
		cfg, err := Load("testdata/minimal.yaml", envOf(map[string]string{
			"CEKAT_ARCHIVER_CLICKHOUSE_TLS_ENABLED":   "true",
			"CEKAT_ARCHIVER_CLICKHOUSE_TLS_CA_FILE":   caFile,
			"CEKAT_ARCHIVER_CLICKHOUSE_TLS_CERT_FILE": certFile,
			"CEKAT_ARCHIVER_CLICKHOUSE_TLS_KEY_FILE":  keyFile,
		}))
		if err != nil {
			t.Fatal(err)
		}
		if want := (TLS{Enabled: true, CAFile: caFile, CertFile: certFile, KeyFile: keyFile}); cfg.ClickHouse.TLS != want {
			t.Errorf("TLS = %+v, want %+v", cfg.ClickHouse.TLS, want)
		}
	})

	t.Run("system roots", func(t *testing.T) {
		c, err := TLS{Enabled: true}.Config()
		if err != nil {
			t.Fatal(err)
		}
		if c.RootCAs != nil || len(c.Certificates) != 0 {
			t.Errorf("Config() = %+v, want the system roots and no client certificate", c)
		}
	})

	t.Run("key of another certificate", func(t *testing.T) {
		c := minimal()
		c.ClickHouse.TLS = TLS{Enabled: true, CertFile: certFile, KeyFile: otherKeyFile}
		want := "clickhouse.tls: tls: private key does not match public key"
		if err := c.Validate(); err == nil || err.Error() != want {
			t.Errorf("Validate() = %v, want %q", err, want)
		}
	})

	t.Run("directory", func(t *testing.T) {
		c := minimal()
		c.ClickHouse.TLS = TLS{Enabled: true, CAFile: dir}
		want := "clickhouse.tls.ca_file: " + dir + " is a directory"
		if err := c.Validate(); err == nil || err.Error() != want {
			t.Errorf("Validate() = %v, want %q", err, want)
		}
	})
}
