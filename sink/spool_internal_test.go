package sink

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func spoolTestRows() []MessageRow {
	at := time.Date(2025, 3, 27, 15, 0, 0, 123456789, time.UTC)
	delivered := at.Add(time.Second)
	return []MessageRow{
		{ConversationID: "c1", MessageID: "m1", Direction: "outbound", Type: "text", Status: "delivered", Text: "héllo\x00\n\"",
			SenderRole: RoleAgent, IsTemplate: true, SentAt: at, DeliveredAt: &delivered, Enriched: true,
			Raw: `{"id":"m1"}`, DetailRaw: `{"id":"m1","status":"delivered"}`, FetchedAt: at.Add(time.Minute), Version: 1 << 62},
		{ConversationID: "c1", MessageID: "m2"}, // zero times, nil pointers, empty strings
	}
}

func writeTestSpool(t *testing.T, dir string) *spool {
	t.Helper()
	sp, err := openSpool(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.appendMessages(spoolTestRows()); err != nil {
		t.Fatal(err)
	}
	if err := sp.appendJSON(kindState, State{ConversationID: "c1", HeadMessageID: "m1", Gaps: []Gap{{Before: "m2", Stop: ""}},
		Version: 7, UpdatedAt: time.Date(2025, 3, 27, 15, 0, 1, 5, time.UTC)}); err != nil {
		t.Fatal(err)
	}
	if err := sp.appendMessages(spoolTestRows()[1:]); err != nil {
		t.Fatal(err)
	}
	return sp
}

type spoolRecord struct {
	kind  byte
	rows  []MessageRow
	state State
}

func readTestSpool(t *testing.T, data []byte) ([]spoolRecord, int64) {
	t.Helper()
	var out []spoolRecord
	torn, err := readSpool(bytes.NewReader(data), func(kind byte, p []byte) error {
		r := spoolRecord{kind: kind}
		switch kind {
		case kindMessages:
			rows, err := decodeMessages(p)
			if err != nil {
				return err
			}
			r.rows = rows
		case kindState:
			if err := json.Unmarshal(p, &r.state); err != nil {
				return err
			}
		}
		out = append(out, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out, torn
}

// Every field of a row, and a state, come back from the spool as written,
// in the order written.
func TestSpoolRoundTrip(t *testing.T) {
	sp := writeTestSpool(t, t.TempDir())
	defer sp.f.Close()
	data, err := os.ReadFile(sp.name)
	if err != nil {
		t.Fatal(err)
	}
	recs, torn := readTestSpool(t, data)
	if torn != 0 {
		t.Errorf("torn = %d bytes in a whole file", torn)
	}
	if len(recs) != 3 || recs[0].kind != kindMessages || recs[1].kind != kindState || recs[2].kind != kindMessages {
		t.Fatalf("records %+v, want messages, state, messages", recs)
	}
	if diff := cmp.Diff(spoolTestRows(), recs[0].rows); diff != "" {
		t.Errorf("rows (-written +read):\n%s", diff)
	}
	if recs[1].state.HeadMessageID != "m1" || recs[1].state.Version != 7 || len(recs[1].state.Gaps) != 1 ||
		!recs[1].state.UpdatedAt.Equal(time.Date(2025, 3, 27, 15, 0, 1, 5, time.UTC)) {
		t.Errorf("state read back as %+v", recs[1].state)
	}
}

// A file cut inside its last record, or ending in garbage, gives the
// records before it and says how much it dropped; a flipped byte inside a
// record stops the reading there.
func TestSpoolTornTail(t *testing.T) {
	sp := writeTestSpool(t, t.TempDir())
	defer sp.f.Close()
	data, err := os.ReadFile(sp.name)
	if err != nil {
		t.Fatal(err)
	}
	whole, _ := readTestSpool(t, data)
	lastLen := len(data) - recordEnd(t, data, 2)

	for _, tc := range []struct {
		name      string
		data      []byte
		wantRecs  int
		wantTornN int64
	}{
		{"cut inside the last record", data[:len(data)-3], 2, int64(lastLen - 3)},
		{"cut inside the last header", data[:recordEnd(t, data, 2)+5], 2, 5},
		{"garbage after the last record", append(bytes.Clone(data), 0xff, 0xff, 0xff, 0x7f, 1, 2, 3, 4, 5), 3, 9},
		{"a flipped byte in the second record", flip(data, recordEnd(t, data, 1)+10), 1, int64(len(data) - recordEnd(t, data, 1))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs, torn := readTestSpool(t, tc.data)
			if len(recs) != tc.wantRecs || torn != tc.wantTornN {
				t.Fatalf("%d records, %d bytes torn; want %d and %d", len(recs), torn, tc.wantRecs, tc.wantTornN)
			}
			if diff := cmp.Diff(whole[:tc.wantRecs], recs, cmp.AllowUnexported(spoolRecord{})); diff != "" {
				t.Errorf("records before the tear differ:\n%s", diff)
			}
		})
	}
}

// recordEnd is the offset after the first n records of data.
func recordEnd(t *testing.T, data []byte, n int) int {
	t.Helper()
	off := 0
	for range n {
		if off+8 > len(data) {
			t.Fatalf("fewer than %d records", n)
		}
		off += 8 + int(uint32(data[off])|uint32(data[off+1])<<8|uint32(data[off+2])<<16|uint32(data[off+3])<<24)
	}
	return off
}

func flip(data []byte, at int) []byte {
	out := bytes.Clone(data)
	out[at] ^= 0x40
	return out
}

// A write that would pass the bound is refused whole, with ErrSpoolFull,
// and leaves the file as it was; writes that fit go on after it.
func TestSpoolBound(t *testing.T) {
	sp, err := openSpool(t.TempDir(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.f.Close()
	rows := spoolTestRows()
	if err := sp.appendMessages(rows); err != nil {
		t.Fatal(err)
	}
	before := sp.size
	sp.max = before + 80 // room for the second row alone
	err = sp.appendMessages(rows)
	if !errors.Is(err, ErrSpoolFull) {
		t.Fatalf("write past the bound = %v, want ErrSpoolFull", err)
	}
	if fi, _ := sp.f.Stat(); sp.size != before || fi.Size() != before {
		t.Errorf("a refused write changed the spool: %d bytes (file %d), was %d", sp.size, fi.Size(), before)
	}
	if err := sp.appendMessages(rows[1:]); err != nil {
		t.Errorf("a write that fits after a refused one: %v", err)
	}
}

// A spool whose process is alive (its lock held) is not taken for replay;
// one left by a dead process is, once, and an empty spool is removed when
// closed.
func TestOrphanSpools(t *testing.T) {
	dir := t.TempDir()
	live := writeTestSpool(t, dir)
	defer live.f.Close()
	dead := writeTestSpool(t, dir)
	dead.f.Close() // what a killed process leaves: the file, no lock

	got, err := orphanSpools(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(got)
	if len(got) != 1 || filepath.Base(got[0].Name()) != filepath.Base(dead.name) {
		t.Fatalf("orphans %v, want only %s", got, dead.name)
	}
	again, err := orphanSpools(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != 0 {
		closeAll(again)
		t.Errorf("a spool being replayed was taken again: %v", again)
	}

	empty, err := openSpool(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := empty.close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(empty.name); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an empty spool was kept after close: %v", err)
	}
}
