package sink_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cekat-archiver/cekat-archiver/sink"
)

// bigRows are rows of about 2 KiB each, as enriched messages are (the list
// item and the detail answer).
func bigRows(conv string, from, n int) []sink.MessageRow {
	rows := manyRows(conv, from, n)
	for i := range rows {
		rows[i].DetailRaw = `{"id":"` + rows[i].MessageID + `","body":"` + strings.Repeat("x", 2000) + `"}`
	}
	return rows
}

// With the spool at its smallest allowed bound (1 MiB) and a healthy
// ClickHouse, a run's writes never fail: the INSERT is ended, and the spool
// emptied, before a write would pass the bound, whatever the rows and time
// left to the INSERT.
func TestSmallestSpoolEndsTheInsert(t *testing.T) {
	a, st := newArchive(t, sink.ArchiveOptions{BatchInterval: time.Hour, SpoolMaxBytes: 1 << 20})
	ctx := testContext(t)
	const total = 3000 // about 6 MiB: six spools' worth
	for i := 0; i < total; i += 10 {
		if err := a.AddMessages(ctx, bigRows("c", i, 10)...); err != nil {
			t.Fatalf("after %d of %d rows, with ClickHouse healthy: %v", i, total, err)
		}
		if i%500 == 0 {
			if err := a.AddState(ctx, sink.State{ConversationID: "c", HeadMessageID: fmt.Sprintf("m%06d", i), Version: uint64(i + 1)}); err != nil {
				t.Fatalf("a state after %d rows: %v", i, err)
			}
		}
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := messageCount(t, st, "c"); n != total {
		t.Errorf("%d of %d rows stored", n, total)
	}
	if f := a.Stats().Flushes; f < 6 {
		t.Errorf("%d INSERTs for 6 MiB of rows through a 1 MiB spool", f)
	}
}

// A spool full while ClickHouse fails says so with ClickHouse's own error,
// and is not taken for a failure of the local disk.
func TestSpoolFullSaysWhatClickHouseAnswered(t *testing.T) {
	a, st := newArchive(t, sink.ArchiveOptions{BatchInterval: time.Hour, SpoolMaxBytes: 1 << 20})
	ctx := testContext(t)
	renameTable(t, st, "messages", "messages_away")
	var err error
	for i := 0; i < 10000 && err == nil; i += 10 {
		err = a.AddMessages(ctx, bigRows("c", i, 10)...)
		if err != nil && !errors.Is(err, sink.ErrSpoolFull) {
			err = nil // ClickHouse fails: the rows are kept, the spool fills
		}
	}
	if !errors.Is(err, sink.ErrSpoolFull) {
		t.Fatalf("writes while ClickHouse fails never filled the spool: %v", err)
	}
	if errors.Is(err, sink.ErrSpoolDisk) || !strings.Contains(err.Error(), "ClickHouse") ||
		!strings.Contains(err.Error(), "messages") || !strings.Contains(err.Error(), "exist") {
		t.Errorf("spool full: %v; want ClickHouse named with its answer (the table does not exist)", err)
	}
	renameTable(t, st, "messages_away", "messages")
}

// leftSpool is the one spool file an archive left in dir for database db.
func leftSpool(t *testing.T, dir, db string) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, db, "*.spool"))
	if len(files) != 1 {
		t.Fatalf("spool files %v, want one", files)
	}
	return files[0]
}

// The reproduced hole: a first sync stores rows and the conversation's
// state; a second run's rows and the state behind them wait in the spool
// while ClickHouse fails, and the process stops; the database is dropped
// and made again by migrate (or restored from a backup that lacks the
// first rows, and given a new identity); the next archive opened replays
// the spool. It must store the rows and not the state, whose head says
// that the first rows, which this database lacks, are archived: a walk
// would stop there and never fetch them again.
func TestSpoolReplayedIntoARecreatedArchive(t *testing.T) {
	for _, tc := range []struct {
		name   string
		remake func(t *testing.T, st *sink.Store)
	}{
		{"dropped and made again", func(t *testing.T, st *sink.Store) {
			if err := st.Conn().Exec(testContext(t), "DROP DATABASE "+st.Database()); err != nil {
				t.Fatal(err)
			}
			if _, err := st.Migrate(testContext(t)); err != nil {
				t.Fatal(err)
			}
		}},
		{"restored from a backup", func(t *testing.T, st *sink.Store) {
			// The backup's rows are those of the first sync or fewer: which
			// they are does not matter, the spool's state cannot know.
			renameTable(t, st, "messages_away", "messages")
			if _, err := st.NewArchiveID(testContext(t)); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := migratedStore(t)
			ctx := testContext(t)
			opts := sink.ArchiveOptions{BatchInterval: time.Hour, SpoolDir: t.TempDir()}
			a, err := sink.OpenArchive(ctx, st, opts)
			if err != nil {
				t.Fatal(err)
			}
			if err := a.AddMessages(ctx, manyRows("c", 0, 10)...); err != nil {
				t.Fatal(err)
			}
			if err := a.AddState(ctx, sink.State{ConversationID: "c", HeadMessageID: "m000009", Version: 1}); err != nil {
				t.Fatal(err)
			}
			if err := a.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			first, err := st.ArchiveID(ctx)
			if err != nil {
				t.Fatal(err)
			}

			renameTable(t, st, "messages", "messages_away")
			if err := a.AddMessages(ctx, manyRows("c", 10, 5)...); err != nil {
				t.Fatal(err)
			}
			if err := a.AddState(ctx, sink.State{ConversationID: "c", HeadMessageID: "m000014", Version: 2}); err != nil {
				t.Fatal(err)
			}
			if err := a.Flush(ctx); err == nil {
				t.Fatal("a flush without the messages table succeeded")
			}
			a.Crash()
			leftSpool(t, opts.SpoolDir, st.Database())

			tc.remake(t, st)
			if second, err := st.ArchiveID(ctx); err != nil || second == first {
				t.Fatalf("identity after the database was made again: %q, %v; was %q", second, err, first)
			}
			b, err := sink.OpenArchive(ctx, st, opts)
			if err != nil {
				t.Fatalf("open on the spool of another archive: %v", err)
			}
			defer b.Close(ctx)
			if n := archivedCount(t, b, "c", "m000010", "m000011", "m000012", "m000013", "m000014"); n != 5 {
				t.Errorf("%d of the 5 spooled rows stored", n)
			}
			states, err := b.LoadStates(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st := states["c"]; st.HeadMessageID == "m000014" {
				t.Errorf("state %+v replayed into another archive: m000000-m000009 would never be fetched again", st)
			}
		})
	}
}

// migrate --new-identity: the new id names the archive, the old one no
// longer does, and migrating again keeps the new one.
func TestNewArchiveID(t *testing.T) {
	st := migratedStore(t)
	ctx := testContext(t)
	old, err := st.ArchiveID(ctx)
	if err != nil || old == "" {
		t.Fatalf("identity after migrate: %q, %v", old, err)
	}
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if again, err := st.ArchiveID(ctx); err != nil || again != old {
		t.Fatalf("identity after migrating again: %q, %v; want %q", again, err, old)
	}
	fresh, err := st.NewArchiveID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := st.ArchiveID(ctx); err != nil || got != fresh || fresh == old {
		t.Errorf("identity after a new one was made: %q, %v; want %q (not %q)", got, err, fresh, old)
	}
}

// A spool whose middle was damaged on disk, and that ends in a record of a
// kind this binary does not know, blocks no start: the readable records
// are replayed, the state behind the damage is dropped, the unreadable
// bytes are moved next to the spool, and the spool file is removed.
func TestDamagedSpoolIsSetAside(t *testing.T) {
	st := migratedStore(t)
	ctx := testContext(t)
	opts := sink.ArchiveOptions{BatchInterval: time.Hour, SpoolDir: t.TempDir()}
	a, err := sink.OpenArchive(ctx, st, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{
		a.AddMessages(ctx, manyRows("c", 0, 10)...),
		a.AddState(ctx, sink.State{ConversationID: "c", HeadMessageID: "m000019", Version: 1}),
		a.AddMessages(ctx, manyRows("c", 10, 10)...),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	a.Crash()
	file := leftSpool(t, opts.SpoolDir, st.Database())
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	header := 8 + int(binary.LittleEndian.Uint32(data))
	first := 8 + int(binary.LittleEndian.Uint32(data[header:]))
	data[header+first/2] ^= 0x40 // in the middle of the first rows
	unknown := []byte{99, '{', '}'}
	data = binary.LittleEndian.AppendUint32(data, uint32(len(unknown)))
	data = binary.LittleEndian.AppendUint32(data, crc32.Checksum(unknown, crc32.MakeTable(crc32.Castagnoli)))
	data = append(data, unknown...)
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}

	b, err := sink.OpenArchive(ctx, st, opts)
	if err != nil {
		t.Fatalf("open on a damaged spool: %v", err)
	}
	defer b.Close(ctx)
	if n := messageCount(t, st, "c"); n != 10 {
		t.Errorf("%d rows stored, want the 10 after the damage", n)
	}
	if n := archivedCount(t, b, "c", "m000010", "m000019"); n != 2 {
		t.Errorf("%d of the first and last rows after the damage stored", n)
	}
	if states, err := b.LoadStates(ctx); err != nil || len(states) != 0 {
		t.Errorf("states %v, %v: the state behind the damage was replayed", states, err)
	}
	aside, _ := filepath.Glob(file + ".corrupt-*")
	if len(aside) != 1 {
		t.Fatalf("set aside: %v, want one file", aside)
	}
	if fi, err := os.Stat(aside[0]); err != nil || fi.Size() != int64(first+8+len(unknown)) {
		t.Errorf("set-aside file: %v, %v; want the damaged record and the unknown one (%d bytes)", fi, err, first+8+len(unknown))
	}
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the replayed spool is still there: %v", err)
	}
}
