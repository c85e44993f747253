// Package sinktest gives tests a real ClickHouse server: its address, and throwaway databases;
// a proxy that cuts or stalls it; and the helpers every package's tests share: waiting for a
// condition (WaitFor) and printing benchmark figures (BenchLogf, EnvInt, SelfCPU, ServerCPU).
// It is under sink/ so that the sink's tests can use it too (the sink never imports the syncer).
//
// Tests that use it are skipped unless CEKAT_ARCHIVER_TEST_CLICKHOUSE_ADDR is set. To run them:
//
//	deploy/clickhouse/clickhouse.sh start
//	CEKAT_ARCHIVER_TEST_CLICKHOUSE_ADDR=127.0.0.1:19000 go test ./...
package sinktest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// EnvAddr names the environment variable holding the test server's native host:port.
const EnvAddr = "CEKAT_ARCHIVER_TEST_CLICKHOUSE_ADDR"

// Addr returns the test ClickHouse server's native address (host:port), or skips the test
// when EnvAddr is not set.
func Addr(t testing.TB) string {
	t.Helper()
	addr := strings.TrimSpace(os.Getenv(EnvAddr))
	if addr == "" {
		t.Skipf("no test ClickHouse: start one with `deploy/clickhouse/clickhouse.sh start` "+
			"and set %s=127.0.0.1:19000", EnvAddr)
	}
	return addr
}

// Conn opens a clickhouse-go connection to the test server, without selecting a database, and
// closes it when the test ends. It skips like Addr and fails the test if the server does not
// answer.
func Conn(t testing.TB) driver.Conn {
	t.Helper()
	addr := Addr(t)
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:        []string{addr},
		DialTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatalf("sinktest: open ClickHouse at %s: %v", addr, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := conn.Ping(ctx); err != nil {
		_ = conn.Close()
		t.Fatalf("sinktest: ClickHouse at %s (%s) does not answer: %v; is it running? "+
			"(deploy/clickhouse/clickhouse.sh status)", addr, EnvAddr, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// DatabaseName returns a database name unique to this call, without creating the database,
// and drops the database (if anything created it) when the test ends. It skips like Addr.
func DatabaseName(t testing.TB) string {
	t.Helper()
	return databaseName(t, Conn(t))
}

func databaseName(t testing.TB, conn driver.Conn) string {
	t.Helper()
	name := uniqueName(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
			// A left-over database does not make the test wrong; a busy
			// server can take longer than this to drop one.
			t.Logf("sinktest: drop database %s: %v (left behind)", name, err)
		}
	})
	return name
}

// FreshDatabase creates an empty database with a unique name, returns the name, and drops the
// database when the test ends. It skips like Addr.
func FreshDatabase(t testing.TB) string {
	t.Helper()
	conn := Conn(t)
	name := databaseName(t, conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := conn.Exec(ctx, "CREATE DATABASE `"+name+"`"); err != nil {
		t.Fatalf("sinktest: create database %s: %v", name, err)
	}
	return name
}

// uniqueName is "t_" plus a short form of the test's name plus random hex: recognizable when
// left behind by a killed test run, and never shared between calls.
func uniqueName(t testing.TB) string {
	var b strings.Builder
	for _, r := range strings.ToLower(t.Name()) {
		if b.Len() >= 32 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		panic(fmt.Sprintf("sinktest: random: %v", err))
	}
	return "t_" + b.String() + "_" + hex.EncodeToString(rnd[:])
}

// The environment variables naming the test cluster (deploy/clickhouse/cluster.sh env prints
// them): its name in the servers' remote_servers, and its replicas' native host:port addresses,
// comma-separated.
const (
	EnvCluster      = "CEKAT_ARCHIVER_TEST_CLUSTER"
	EnvClusterAddrs = "CEKAT_ARCHIVER_TEST_CLUSTER_ADDRS"
)

// Cluster returns the test cluster's name and its replicas' addresses, or skips the test when
// EnvCluster or EnvClusterAddrs is not set. The test shares the cluster with other tests, of
// any package, that call Cluster; ClusterAlone waits for them to end.
func Cluster(t testing.TB) (string, []string) {
	t.Helper()
	return cluster(t, syscall.LOCK_SH)
}

// ClusterAlone is Cluster for a test that stops a replica: no other cluster test, in this
// process or another (go test runs packages side by side), runs while it holds the cluster.
func ClusterAlone(t testing.TB) (string, []string) {
	t.Helper()
	return cluster(t, syscall.LOCK_EX)
}

func cluster(t testing.TB, how int) (string, []string) {
	t.Helper()
	name := strings.TrimSpace(os.Getenv(EnvCluster))
	var addrs []string
	for _, a := range strings.Split(os.Getenv(EnvClusterAddrs), ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	if name == "" || len(addrs) == 0 {
		t.Skipf("no test cluster: start one with `deploy/clickhouse/cluster.sh start` and set %s and %s "+
			"(`eval \"$(deploy/clickhouse/cluster.sh env)\"`)", EnvCluster, EnvClusterAddrs)
	}
	lockCluster(t, strings.Join(addrs, ","), how)
	return name, addrs
}

// lockCluster holds a file lock named after the cluster's addresses until the test ends.
func lockCluster(t testing.TB, addrs string, how int) {
	t.Helper()
	name := strings.NewReplacer(":", "_", ",", "-", "/", "_").Replace(addrs)
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "cekat-archiver-test-cluster-"+name+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatalf("sinktest: cluster lock: %v", err)
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		t.Fatalf("sinktest: cluster lock: %v", err)
	}
	t.Cleanup(func() { f.Close() }) // closing releases the lock
}

// ClusterDatabaseName returns a database name unique to this call, without creating it, and
// drops the database on every replica in addrs that answers when the test ends. Each replica
// drops its own copy, so that a replica stopped by the test does not hold up the others.
func ClusterDatabaseName(t testing.TB, addrs []string) string {
	t.Helper()
	name := uniqueName(t)
	t.Cleanup(func() {
		for _, addr := range addrs {
			conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, DialTimeout: 5 * time.Second})
			if err != nil {
				t.Logf("sinktest: open %s: %v (database %s left behind)", addr, err, name)
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
				t.Logf("sinktest: drop database %s on %s: %v (left behind)", name, addr, err)
			}
			cancel()
			_ = conn.Close()
		}
	})
	return name
}
