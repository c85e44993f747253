package sink_test

import (
	"context"
	"strings"
	"testing"

	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/sink/sinktest"
)

// TestCompressionNone: without compression, batches go in and results come
// out the same as with LZ4.
func TestCompressionNone(t *testing.T) {
	ctx := testContext(t)
	for _, c := range []string{sink.CompressionNone, sink.CompressionLZ4, ""} {
		st, err := sink.Open(ctx, sink.Options{Addr: []string{sinktest.Addr(t)}, Database: sinktest.FreshDatabase(t), Compression: c})
		if err != nil {
			t.Fatalf("Open with compression %q: %v", c, err)
		}
		name := c
		if name == "" {
			name = "default"
		}
		table := st.TableName("compression_" + name)
		if err := st.Conn().Exec(ctx, "CREATE DATABASE IF NOT EXISTS `"+st.Database()+"`"); err != nil {
			t.Fatal(err)
		}
		if err := st.Conn().Exec(ctx, "CREATE TABLE "+table+" (n UInt64, s String) ENGINE = Memory"); err != nil {
			t.Fatal(err)
		}
		batch, err := st.Conn().PrepareBatch(ctx, "INSERT INTO "+table+" (n, s)")
		if err != nil {
			t.Fatal(err)
		}
		text := strings.Repeat("x", 100)
		for i := range 10000 {
			if err := batch.Append(uint64(i), text); err != nil {
				t.Fatal(err)
			}
		}
		if err := batch.Send(); err != nil {
			t.Fatalf("compression %q: send: %v", c, err)
		}
		var n, total uint64
		if err := st.Conn().QueryRow(ctx, "SELECT count(), sum(length(s)) FROM "+table).Scan(&n, &total); err != nil {
			t.Fatal(err)
		}
		if n != 10000 || total != 10000*100 {
			t.Errorf("compression %q: %d rows of %d bytes, want 10000 of 1000000", c, n, total)
		}
		st.Close()
	}
}

func TestOpenRejectsUnknownCompression(t *testing.T) {
	_, err := sink.Open(context.Background(), sink.Options{Addr: []string{"127.0.0.1:1"}, Compression: "zstd"})
	if err == nil || !strings.Contains(err.Error(), "compression") {
		t.Errorf("Open with compression zstd: %v, want a compression error", err)
	}
}
