package sinktest_test

import (
	"context"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/cekat-archiver/cekat-archiver/sink/sinktest"
)

func TestAddrSkipsWhenUnset(t *testing.T) {
	t.Setenv(sinktest.EnvAddr, "")
	var reached bool
	t.Run("inner", func(t *testing.T) {
		sinktest.Addr(t)
		reached = true
	})
	if reached {
		t.Error("Addr returned with the variable unset; want a skip")
	}
}

func TestFreshDatabaseIsDroppedAfterTheTest(t *testing.T) {
	conn := sinktest.Conn(t)
	var name string
	t.Run("inner", func(t *testing.T) {
		name = sinktest.FreshDatabase(t)
		if got := databases(t, conn, name); got != 1 {
			t.Fatalf("database %s: found %d, want it created", name, got)
		}
	})
	if got := databases(t, conn, name); got != 0 {
		t.Errorf("database %s still exists after its test", name)
	}
}

func databases(t *testing.T, conn driver.Conn, name string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.databases WHERE name = ?", name).Scan(&n); err != nil {
		t.Fatalf("look up database %s: %v", name, err)
	}
	return n
}
