package sink

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

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

const testArchiveID = "archive-1"

func openTestSpool(t *testing.T, dir string) *spool {
	t.Helper()
	sp, err := openSpool(dir, 1<<20, spoolHeader{Archive: testArchiveID, Database: "db"})
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

// writeTestSpool writes a header, then messages, a state, messages.
func writeTestSpool(t *testing.T, dir string) *spool {
	t.Helper()
	sp := openTestSpool(t, dir)
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
	kind   byte
	rows   []MessageRow
	quar   []QuarantineRow
	checks []StatusCheck
	convs  []ConversationRow
	state  State
}

// readTestSpool reads data as a replay into the archive testArchiveID
// would, and returns the records it would replay.
func readTestSpool(t *testing.T, data []byte) ([]spoolRecord, spoolReport) {
	t.Helper()
	recs, rep, err := readTestSpoolErr(data)
	if err != nil {
		t.Fatal(err)
	}
	return recs, rep
}

func readTestSpoolErr(data []byte) ([]spoolRecord, spoolReport, error) {
	var out []spoolRecord
	rep, err := readSpool(bytes.NewReader(data), int64(len(data)), "test.spool",
		func(id string) (bool, error) { return id == testArchiveID, nil },
		func(kind byte, p []byte) error {
			r := spoolRecord{kind: kind}
			var err error
			switch kind {
			case kindMessages, kindMessagesSourced:
				r.rows, err = decodeMessagesOf(kind, p)
			case kindQuarantine:
				err = strictAppend(p, &r.quar)
			case kindChecks:
				err = strictAppend(p, &r.checks)
			case kindConversations:
				err = strictAppend(p, &r.convs)
			case kindState:
				err = strictJSON(p, &r.state)
			default:
				err = fmt.Errorf("%w: kind %d", errUndecodable, kind)
			}
			if err != nil {
				return err
			}
			out = append(out, r)
			return nil
		})
	return out, rep, err
}

func kinds(recs []spoolRecord) []byte {
	out := make([]byte, 0, len(recs))
	for _, r := range recs {
		out = append(out, r.kind)
	}
	return out
}

var cmpRecords = cmp.AllowUnexported(spoolRecord{})

// Every field of a row, and a state, come back from the spool as written,
// in the order written, behind a header naming the archive.
func TestSpoolRoundTrip(t *testing.T) {
	sp := writeTestSpool(t, t.TempDir())
	defer sp.f.Close()
	data, err := os.ReadFile(sp.name)
	if err != nil {
		t.Fatal(err)
	}
	recs, rep := readTestSpool(t, data)
	if len(rep.setAside) != 0 || rep.foreign || rep.dropped != 0 {
		t.Errorf("a whole file of this archive: %+v", rep)
	}
	if rep.header.Format != spoolFormat || rep.header.Archive != testArchiveID || rep.header.Database != "db" {
		t.Errorf("header %+v", rep.header)
	}
	if got := kinds(recs); !bytes.Equal(got, []byte{kindMessages, kindState, kindMessages}) {
		t.Fatalf("records of kinds %v, want messages, state, messages", got)
	}
	if diff := cmp.Diff(spoolTestRows(), recs[0].rows); diff != "" {
		t.Errorf("rows (-written +read):\n%s", diff)
	}
	if recs[1].state.HeadMessageID != "m1" || recs[1].state.Version != 7 || len(recs[1].state.Gaps) != 1 ||
		!recs[1].state.UpdatedAt.Equal(time.Date(2025, 3, 27, 15, 0, 1, 5, time.UTC)) {
		t.Errorf("state read back as %+v", recs[1].state)
	}
}

// fillRandom sets every field of the struct v points to (recursively, for
// the types the spool's records hold) to a random value; pointers and
// slices are sometimes nil. It fails on a field type it does not know, so
// that a field added to a record type is filled here too.
func fillRandom(t *testing.T, rnd *rand.Rand, v reflect.Value, anyBytes bool) {
	t.Helper()
	switch v.Kind() {
	case reflect.String:
		var b []byte
		for range rnd.IntN(12) {
			if anyBytes {
				b = append(b, byte(rnd.IntN(256)))
			} else {
				b = utf8.AppendRune(b, rune(rnd.IntN(0xD000)))
			}
		}
		v.SetString(string(b))
	case reflect.Bool:
		v.SetBool(rnd.IntN(2) == 1)
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(rnd.Uint64() >> (64 - v.Type().Bits()))
	case reflect.Pointer:
		if rnd.IntN(4) == 0 {
			v.SetZero()
			return
		}
		v.Set(reflect.New(v.Type().Elem()))
		fillRandom(t, rnd, v.Elem(), anyBytes)
	case reflect.Slice:
		n := rnd.IntN(3)
		if n == 0 && rnd.IntN(2) == 0 {
			v.SetZero()
			return
		}
		v.Set(reflect.MakeSlice(v.Type(), n, n))
		for i := range n {
			fillRandom(t, rnd, v.Index(i), anyBytes)
		}
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			// From before 1970 to after 2100, to the nanosecond, in UTC (the
			// spool's zone).
			v.Set(reflect.ValueOf(time.Unix(rnd.Int64N(5e9)-1e9, rnd.Int64N(1e9)).UTC()))
			return
		}
		for i := range v.NumField() {
			fillRandom(t, rnd, v.Field(i), anyBytes)
		}
	default:
		t.Fatalf("fillRandom: a field of kind %s: teach it", v.Kind())
	}
}

// everyFieldSet fails unless each field of T is non-zero in some value
// of vs: the generator reached every field.
func everyFieldSet[T any](t *testing.T, vs []T) {
	t.Helper()
	typ := reflect.TypeFor[T]()
	for i := range typ.NumField() {
		set := false
		for _, v := range vs {
			set = set || !reflect.ValueOf(v).Field(i).IsZero()
		}
		if !set {
			t.Errorf("%s.%s never filled", typ.Name(), typ.Field(i).Name)
		}
	}
}

// randomValues are n random values of T, strings of any bytes or of UTF-8
// (JSON keeps no other).
func randomValues[T any](t *testing.T, rnd *rand.Rand, n int, anyBytes bool) []T {
	out := make([]T, n)
	for i := range out {
		fillRandom(t, rnd, reflect.ValueOf(&out[i]).Elem(), anyBytes)
	}
	everyFieldSet(t, out)
	return out
}

// Random rows, every field filled with random bytes (so that two fields
// read in each other's place differ), and random records of every other
// kind, come back from the spool exactly. Seeded: a failure repeats.
func TestSpoolRoundTripRandom(t *testing.T) {
	for seed := range uint64(20) {
		rnd := rand.New(rand.NewPCG(seed, 1))
		rows := randomValues[MessageRow](t, rnd, 50, true)
		quar := randomValues[QuarantineRow](t, rnd, 20, false)
		checks := randomValues[StatusCheck](t, rnd, 20, false)
		convs := randomValues[ConversationRow](t, rnd, 20, false)
		states := randomValues[State](t, rnd, 20, false)
		sp := openTestSpool(t, t.TempDir())
		for _, err := range []error{sp.appendMessages(rows[:25]), sp.appendJSON(kindQuarantine, quar),
			sp.appendJSON(kindChecks, checks), sp.appendJSON(kindConversations, convs), sp.appendJSON(kindState, states[0]),
			sp.appendMessages(rows[25:])} {
			if err != nil {
				t.Fatal(err)
			}
		}
		data, err := os.ReadFile(sp.name)
		sp.f.Close()
		if err != nil {
			t.Fatal(err)
		}
		recs, rep := readTestSpool(t, data)
		// Random rows carry a status source: the kind that keeps it.
		want := []spoolRecord{{kind: kindMessagesSourced, rows: rows[:25]}, {kind: kindQuarantine, quar: quar},
			{kind: kindChecks, checks: checks}, {kind: kindConversations, convs: convs}, {kind: kindState, state: states[0]},
			{kind: kindMessagesSourced, rows: rows[25:]}}
		if len(rep.setAside) != 0 || rep.dropped != 0 {
			t.Fatalf("seed %d: %+v", seed, rep)
		}
		if len(recs) != len(want) {
			t.Fatalf("seed %d: records of kinds %v", seed, kinds(recs))
		}
		if diff := cmp.Diff(want, recs, cmpRecords); diff != "" {
			t.Fatalf("seed %d (-written +read):\n%s", seed, diff)
		}
	}
}

// A message record with bytes left after its rows, or a flag that is
// neither 0 nor 1, is not this encoding: it is refused, never read as
// rows.
func TestDecodeMessagesRefusesOtherEncodings(t *testing.T) {
	p := binary.AppendUvarint(nil, 1)
	p = encodeMessage(p, &spoolTestRows()[0])
	if _, err := decodeMessages(p); err != nil {
		t.Fatalf("a whole record: %v", err)
	}
	if _, err := decodeMessages(append(bytes.Clone(p), 0)); !errors.Is(err, errUndecodable) {
		t.Errorf("a byte left over: %v, want errUndecodable", err)
	}
	if _, err := decodeMessages(p[:len(p)-1]); !errors.Is(err, errUndecodable) {
		t.Errorf("a record cut short: %v, want errUndecodable", err)
	}
	// The IsTemplate flag follows the 19 strings.
	off := bytes.Index(p, []byte(`{"id":"m1","status":"delivered"}`)) + len(`{"id":"m1","status":"delivered"}`)
	bad := bytes.Clone(p)
	bad[off] = 2
	if _, err := decodeMessages(bad); !errors.Is(err, errUndecodable) {
		t.Errorf("a flag of 2: %v, want errUndecodable", err)
	}
}

// recordEnd is the offset after the first n records of data (the header
// is the first).
func recordEnd(t *testing.T, data []byte, n int) int {
	t.Helper()
	off := 0
	for range n {
		if off+8 > len(data) {
			t.Fatalf("fewer than %d records", n)
		}
		off += 8 + int(binary.LittleEndian.Uint32(data[off:]))
	}
	return off
}

func flip(data []byte, at int) []byte {
	out := bytes.Clone(data)
	out[at] ^= 0x40
	return out
}

// frame is a record as the spool writes it.
func frame(kind byte, payload []byte) []byte {
	rec := append([]byte{kind}, payload...)
	out := binary.LittleEndian.AppendUint32(nil, uint32(len(rec)))
	out = binary.LittleEndian.AppendUint32(out, crc32.Checksum(rec, crcTable))
	return append(out, rec...)
}

func splice(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// What cannot be read is set aside and the reading goes on at the next
// readable record: a cut at the end drops only the cut record; a flipped
// byte, garbage or a record of a kind this binary does not know in the
// middle costs only that stretch, and the sync states behind it are
// dropped (they may describe the rows it held). Records before the damage
// are all kept.
func TestSpoolDamage(t *testing.T) {
	sp := writeTestSpool(t, t.TempDir()) // header, messages, state, messages
	defer sp.f.Close()
	data, err := os.ReadFile(sp.name)
	if err != nil {
		t.Fatal(err)
	}
	whole, _ := readTestSpool(t, data)
	h, m1, st := recordEnd(t, data, 1), recordEnd(t, data, 2), recordEnd(t, data, 3)
	garbage := []byte{0xff, 0xff, 0xff, 0x7f, 1, 2, 3, 4, 5, 0, 0, 0, 0, 9}
	unknown := frame(99, []byte(`{"from":"a newer version"}`))
	for _, tc := range []struct {
		name     string
		data     []byte
		want     []spoolRecord
		aside    []span
		dropped  int
		tornTail bool
		foreign  bool // the header is unreadable: the archive is unknown
	}{
		{"cut inside the last record", data[:len(data)-3], whole[:2], []span{{int64(st), int64(len(data) - 3 - st)}}, 0, true, false},
		{"cut inside the last header", data[:st+5], whole[:2], []span{{int64(st), 5}}, 0, true, false},
		{"garbage after the last record", splice(data, garbage), whole, []span{{int64(len(data)), int64(len(garbage))}}, 0, true, false},
		{"a flipped byte in the first messages", flip(data, h+20), []spoolRecord{whole[2]},
			[]span{{int64(h), int64(m1 - h)}}, 1, false, false},
		{"a flipped length in the first messages", flip(data, h+1), []spoolRecord{whole[2]},
			[]span{{int64(h), int64(m1 - h)}}, 1, false, false},
		{"garbage between two records", splice(data[:st], garbage, data[st:]), whole,
			[]span{{int64(st), int64(len(garbage))}}, 0, false, false},
		{"garbage before a state", splice(data[:h], garbage, data[h:m1], garbage, data[m1:]), []spoolRecord{whole[0], whole[2]},
			[]span{{int64(h), int64(len(garbage))}, {int64(m1 + len(garbage)), int64(len(garbage))}}, 1, false, false},
		{"an unknown kind before a state", splice(data[:m1], unknown, data[m1:]), []spoolRecord{whole[0], whole[2]},
			[]span{{int64(m1), int64(len(unknown))}}, 1, false, false},
		{"a flipped byte in the header", flip(data, 12), []spoolRecord{whole[0], whole[2]}, []span{{0, int64(h)}}, 1, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs, rep := readTestSpool(t, tc.data)
			if diff := cmp.Diff(tc.want, recs, cmpRecords); diff != "" {
				t.Errorf("records read (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.aside, rep.setAside, cmp.AllowUnexported(span{})); diff != "" {
				t.Errorf("set aside (-want +got):\n%s", diff)
			}
			if rep.dropped != tc.dropped || rep.tornTail(int64(len(tc.data))) != tc.tornTail || rep.foreign != tc.foreign {
				t.Errorf("%d dropped, torn tail %v, foreign %v; want %d, %v, %v", rep.dropped,
					rep.tornTail(int64(len(tc.data))), rep.foreign, tc.dropped, tc.tornTail, tc.foreign)
			}
		})
	}
}

// What is set aside goes to a file next to the spool file, byte for byte,
// under a name the replay does not take for a spool.
func TestSetAside(t *testing.T) {
	dir := t.TempDir()
	data := []byte("0123456789abcdef")
	file := filepath.Join(dir, "writes-1.spool")
	name, err := setAside(bytes.NewReader(data), file, []span{{2, 3}, {10, 6}}, time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(name); string(got) != "234abcdef" {
		t.Errorf("set aside %q, want %q", got, "234abcdef")
	}
	if !strings.HasPrefix(name, file+".corrupt-20261207T100000") {
		t.Errorf("set aside to %s", name)
	}
	if orphans, _ := filepath.Glob(filepath.Join(dir, "*"+spoolSuffix)); len(orphans) != 0 {
		t.Errorf("the set-aside file is taken for a spool: %v", orphans)
	}
}

// A spool written for another archive, or by the binary of before that
// wrote no header (testdata/format1.spool, kept as that binary wrote it),
// is read exactly, but its sync states and conversation rows are dropped:
// they are true only of the archive that acknowledged the rows before them.
func TestSpoolOfAnotherArchive(t *testing.T) {
	f := format1Fixture()
	old, err := os.ReadFile("testdata/format1.spool")
	if err != nil {
		t.Fatal(err)
	}
	recs, rep := readTestSpool(t, old)
	want := []spoolRecord{{kind: kindMessages, rows: f.rows[:2]}, {kind: kindQuarantine, quar: f.quar},
		{kind: kindChecks, checks: f.checks}, {kind: kindMessages, rows: f.rows[2:]}}
	if diff := cmp.Diff(want, recs, cmpRecords); diff != "" {
		t.Errorf("format 1 (-want +got):\n%s", diff)
	}
	if !rep.foreign || rep.header.Format != 1 || rep.dropped != 2 || len(rep.setAside) != 0 {
		t.Errorf("format 1: %+v; want foreign, format 1, the state and the conversation rows dropped", rep)
	}

	sp, err := openSpool(t.TempDir(), 1<<20, spoolHeader{Archive: "another"})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.f.Close()
	for _, err := range []error{sp.appendMessages(f.rows), sp.appendJSON(kindConversations, f.convs), sp.appendJSON(kindState, f.state)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	data, _ := os.ReadFile(sp.name)
	recs, rep = readTestSpool(t, data)
	if diff := cmp.Diff([]spoolRecord{{kind: kindMessages, rows: f.rows}}, recs, cmpRecords); diff != "" {
		t.Errorf("another archive's (-want +got):\n%s", diff)
	}
	if !rep.foreign || rep.header.Archive != "another" || rep.dropped != 2 {
		t.Errorf("another archive's: %+v", rep)
	}
}

// A file of a newer format is refused whole, naming the file and what to
// do, before anything of it is used.
func TestSpoolOfANewerFormatIsRefused(t *testing.T) {
	hdr, _ := json.Marshal(spoolHeader{Format: spoolFormat + 1, Archive: testArchiveID})
	data := splice(frame(kindHeader, hdr), frame(kindMessages, binary.AppendUvarint(nil, 0)))
	recs, _, err := readTestSpoolErr(data)
	var newer *newerFormatError
	if !errors.As(err, &newer) || len(recs) != 0 {
		t.Fatalf("a newer format: %v, %d records; want a newerFormatError and none", err, len(recs))
	}
	for _, s := range []string{"test.spool", "newer cekat-archiver", "run that newer version", "move the file"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
}

// A write that would pass the bound is refused whole, with errNoRoom,
// and leaves the file as it was; writes that fit go on after it.
func TestSpoolBound(t *testing.T) {
	sp := openTestSpool(t, t.TempDir())
	defer sp.f.Close()
	rows := spoolTestRows()
	if err := sp.appendMessages(rows); err != nil {
		t.Fatal(err)
	}
	before := sp.size
	sp.max = before + 80 // room for the second row alone
	err := sp.appendMessages(rows)
	if !errors.Is(err, errNoRoom) {
		t.Fatalf("write past the bound = %v, want errNoRoom", err)
	}
	if fi, _ := sp.f.Stat(); sp.size != before || fi.Size() != before {
		t.Errorf("a refused write changed the spool: %d bytes (file %d), was %d", sp.size, fi.Size(), before)
	}
	if err := sp.appendMessages(rows[1:]); err != nil {
		t.Errorf("a write that fits after a refused one: %v", err)
	}
	if err := sp.reset(); err != nil || sp.pending() != 0 {
		t.Fatalf("reset: %v, %d bytes pending", err, sp.pending())
	}
	data, _ := os.ReadFile(sp.name)
	if recs, rep := readTestSpool(t, data); len(recs) != 0 || rep.header.Archive != testArchiveID {
		t.Errorf("after a reset: %v records, header %+v; want none and the header", recs, rep.header)
	}
}

// A write the local disk refuses names the disk, the file and what to do,
// and is marked ErrSpoolDisk: it is not ClickHouse's failure.
func TestSpoolDiskFull(t *testing.T) {
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	sp := openTestSpool(t, t.TempDir())
	defer sp.f.Close()
	sp.f, sp.name = full, "/dev/full" // writes fail with ENOSPC
	err = sp.appendMessages(spoolTestRows())
	if !errors.Is(err, ErrSpoolDisk) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("a write to a full disk: %v; want ErrSpoolDisk and ENOSPC", err)
	}
	for _, s := range []string{"local disk", "/dev/full", "free space"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
	if strings.Contains(err.Error(), "ClickHouse") {
		t.Errorf("error %q blames ClickHouse", err)
	}
}

// A spool whose process is alive (its lock held) is not taken for replay;
// one left by a dead process is, once, and an empty spool (its header
// alone) is removed when closed.
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

	empty := openTestSpool(t, dir)
	if err := empty.close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(empty.name); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an empty spool was kept after close: %v", err)
	}
}

// failingReader fails every read from off on with EIO.
type failingReader struct {
	data []byte
	off  int64
}

func (r failingReader) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > r.off {
		return 0, syscall.EIO
	}
	return copy(p, r.data[off:]), nil
}

// A spool file the disk cannot read is the local disk's failure, named
// with the file; it is not taken for damage to set aside.
func TestSpoolReadErrorNamesTheDisk(t *testing.T) {
	sp := writeTestSpool(t, t.TempDir())
	defer sp.f.Close()
	data, _ := os.ReadFile(sp.name)
	_, err := readSpool(failingReader{data, int64(recordEnd(t, data, 2))}, int64(len(data)), "x/writes-1.spool",
		func(string) (bool, error) { return true, nil }, func(byte, []byte) error { return nil })
	if !errors.Is(err, ErrSpoolDisk) || !errors.Is(err, syscall.EIO) || !strings.Contains(err.Error(), "x/writes-1.spool") {
		t.Errorf("a read the disk refused: %v; want ErrSpoolDisk, EIO and the file", err)
	}
}

// A row whose status a webhook event told (provisional) keeps its source
// through the spool; rows without one are written as before (kind 1).
func TestSpoolKeepsTheStatusSource(t *testing.T) {
	sp := openTestSpool(t, t.TempDir())
	defer sp.f.Close()
	plain := spoolTestRows()
	told := spoolTestRows()
	for i := range told {
		told[i].StatusSource = "webhook:message.read"
	}
	if err := sp.appendMessages(plain); err != nil {
		t.Fatal(err)
	}
	if err := sp.appendMessages(told); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(sp.name)
	if err != nil {
		t.Fatal(err)
	}
	recs, _ := readTestSpool(t, data)
	if got := kinds(recs); !bytes.Equal(got, []byte{kindMessages, kindMessagesSourced}) {
		t.Fatalf("records of kinds %v", got)
	}
	if diff := cmp.Diff(told, recs[1].rows); diff != "" {
		t.Errorf("rows (-written +read):\n%s", diff)
	}
	if diff := cmp.Diff(plain, recs[0].rows); diff != "" {
		t.Errorf("rows (-written +read):\n%s", diff)
	}
}
