package sink

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// The spool keeps, on disk, every write the archive has accepted and
// ClickHouse has not acknowledged yet: what a retry needs, outside the heap.
// One file per process, locked while the process lives; the file of a
// process that died is replayed by the next archive opened on the same
// directory and database, before any run.
//
// A file is a sequence of records: a 4-byte length n, a 4-byte CRC-32C of
// the n bytes that follow, then a kind byte and the payload. Messages are
// encoded in binary (they are the volume); the other kinds are JSON.
// Records are written in the order the archive accepted them, so a file
// cut anywhere (a torn tail) still never holds a state ahead of its rows.

// ErrSpoolFull is returned when a write would grow the spool past its
// bound: ClickHouse has not acknowledged writes for too long.
var ErrSpoolFull = errors.New("spool full")

const (
	kindMessages byte = iota + 1
	kindQuarantine
	kindChecks
	kindConversations
	kindState
)

const spoolSuffix = ".spool"

var crcTable = crc32.MakeTable(crc32.Castagnoli)

type spool struct {
	f    *os.File
	name string // f.Name() is the name it was created under
	size int64
	max  int64
	buf  []byte
}

// openSpool creates this process's spool file in dir, locked. It is created
// under another name and renamed once locked, so that an archive looking for
// files to replay never takes a file whose owner has not locked it yet.
func openSpool(dir string, max int64) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create spool directory: %w", err)
	}
	f, err := os.CreateTemp(dir, "writes-*.new")
	if err != nil {
		return nil, fmt.Errorf("create spool file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("lock spool file: %w", err)
	}
	name := strings.TrimSuffix(f.Name(), ".new") + spoolSuffix
	if err := os.Rename(f.Name(), name); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("name spool file: %w", err)
	}
	return &spool{f: f, name: name, max: max}, nil
}

// orphanSpools opens and locks the spool files in dir that no living
// process holds.
func orphanSpools(dir string) ([]*os.File, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*"+spoolSuffix))
	if err != nil {
		return nil, fmt.Errorf("list spool files: %w", err)
	}
	var out []*os.File
	for _, name := range names {
		f, err := os.OpenFile(name, os.O_RDWR, 0)
		if errors.Is(err, os.ErrNotExist) {
			continue // replayed by another process meanwhile
		}
		if err != nil {
			closeAll(out)
			return nil, fmt.Errorf("open spool file: %w", err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close() // its process is alive
			continue
		}
		if _, err := os.Stat(name); err != nil {
			f.Close() // replayed and removed between the open and the lock
			continue
		}
		out = append(out, f)
	}
	return out, nil
}

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// appendRecord writes one record, or nothing: a write that would pass the
// bound is refused, and a failed write is cut off again.
func (s *spool) appendRecord(kind byte, payload func([]byte) []byte) error {
	s.buf = append(s.buf[:0], 0, 0, 0, 0, 0, 0, 0, 0, kind)
	s.buf = payload(s.buf)
	n := len(s.buf) - 8
	binary.LittleEndian.PutUint32(s.buf[0:4], uint32(n))
	binary.LittleEndian.PutUint32(s.buf[4:8], crc32.Checksum(s.buf[8:], crcTable))
	if s.size+int64(len(s.buf)) > s.max {
		return fmt.Errorf("%w: %d bytes wait for ClickHouse and %d more would pass sync.spool_max_bytes (%d)",
			ErrSpoolFull, s.size, len(s.buf), s.max)
	}
	if _, err := s.f.WriteAt(s.buf, s.size); err != nil {
		_ = s.f.Truncate(s.size)
		return fmt.Errorf("write spool: %w", err)
	}
	s.size += int64(len(s.buf))
	if cap(s.buf) > 1<<20 {
		s.buf = nil // one large write does not pin its buffer
	}
	return nil
}

func (s *spool) appendJSON(kind byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode spool record: %w", err)
	}
	return s.appendRecord(kind, func(dst []byte) []byte { return append(dst, b...) })
}

func (s *spool) appendMessages(rows []MessageRow) error {
	return s.appendRecord(kindMessages, func(dst []byte) []byte {
		dst = binary.AppendUvarint(dst, uint64(len(rows)))
		for i := range rows {
			dst = encodeMessage(dst, &rows[i])
		}
		return dst
	})
}

// sync makes what was written durable against a crash of the machine; a
// crash of the process alone loses nothing written.
func (s *spool) sync() error {
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("sync spool: %w", err)
	}
	return nil
}

// reset empties the spool once ClickHouse has acknowledged all it held.
func (s *spool) reset() error {
	if s.size == 0 {
		return nil
	}
	if err := s.f.Truncate(0); err != nil {
		return fmt.Errorf("empty spool: %w", err)
	}
	s.size = 0
	return nil
}

// close releases the file, removing it when empty; a spool that still holds
// writes is kept for the next archive opened on the directory.
func (s *spool) close() error {
	var err error
	if s.size == 0 {
		err = os.Remove(s.name)
	} else {
		err = s.sync()
	}
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// readSpool hands each whole record of r to fn, in order. It stops at the
// first record cut short or failing its checksum (a torn tail, which only
// a crash of the machine before the spool was synced leaves) and returns
// how many bytes it left unread then.
func readSpool(r io.Reader, fn func(kind byte, payload []byte) error) (torn int64, err error) {
	br := bufio.NewReaderSize(r, 1<<16)
	var head [8]byte
	var rec []byte
	for {
		n, err := io.ReadFull(br, head[:])
		if err == io.EOF {
			return 0, nil
		}
		if err != nil {
			return int64(n) + drain(br), nil
		}
		size := binary.LittleEndian.Uint32(head[0:4])
		if size == 0 || size > 1<<30 {
			return 8 + drain(br), nil
		}
		if cap(rec) < int(size) {
			rec = make([]byte, size)
		}
		rec = rec[:size]
		if n, err := io.ReadFull(br, rec); err != nil {
			return 8 + int64(n) + drain(br), nil
		}
		if crc32.Checksum(rec, crcTable) != binary.LittleEndian.Uint32(head[4:8]) {
			return 8 + int64(size) + drain(br), nil
		}
		if err := fn(rec[0], rec[1:]); err != nil {
			return 0, err
		}
	}
}

func drain(r io.Reader) int64 {
	n, _ := io.Copy(io.Discard, r)
	return n
}

// decodeMessages decodes a kindMessages payload.
func decodeMessages(p []byte) ([]MessageRow, error) {
	d := decoder{b: p}
	n := d.uvarint()
	if d.err != nil || n > uint64(len(p)) {
		return nil, errors.New("decode spooled messages: bad row count")
	}
	rows := make([]MessageRow, n)
	for i := range rows {
		decodeMessage(&d, &rows[i])
	}
	if d.err != nil {
		return nil, fmt.Errorf("decode spooled messages: %w", d.err)
	}
	return rows, nil
}

func encodeMessage(dst []byte, r *MessageRow) []byte {
	for _, s := range [...]string{r.ConversationID, r.MessageID, r.Direction, r.Type, r.Status, r.Text, r.MediaURL,
		r.Caption, r.Filename, r.SenderName, r.SenderPhone, r.SenderID, r.SenderType, r.SenderRole, r.RecipientPhone,
		r.ReplyTo, r.EnrichError, r.Raw, r.DetailRaw} {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	dst = append(dst, boolU8(r.IsTemplate), boolU8(r.Enriched))
	dst = appendTime(dst, r.SentAt)
	dst = appendTime(dst, r.FetchedAt)
	for _, t := range [...]*time.Time{r.DeliveredAt, r.ReadAt, r.UpdatedAt} {
		if t == nil {
			dst = append(dst, 0)
			continue
		}
		dst = appendTime(append(dst, 1), *t)
	}
	return binary.AppendUvarint(dst, r.Version)
}

func decodeMessage(d *decoder, r *MessageRow) {
	for _, s := range [...]*string{&r.ConversationID, &r.MessageID, &r.Direction, &r.Type, &r.Status, &r.Text, &r.MediaURL,
		&r.Caption, &r.Filename, &r.SenderName, &r.SenderPhone, &r.SenderID, &r.SenderType, &r.SenderRole, &r.RecipientPhone,
		&r.ReplyTo, &r.EnrichError, &r.Raw, &r.DetailRaw} {
		*s = d.str()
	}
	r.IsTemplate, r.Enriched = d.byte() == 1, d.byte() == 1
	r.SentAt = d.time()
	r.FetchedAt = d.time()
	for _, t := range [...]**time.Time{&r.DeliveredAt, &r.ReadAt, &r.UpdatedAt} {
		if d.byte() == 1 {
			v := d.time()
			*t = &v
		}
	}
	r.Version = d.uvarint()
}

func appendTime(dst []byte, t time.Time) []byte {
	dst = binary.AppendVarint(dst, t.Unix())
	return binary.AppendUvarint(dst, uint64(t.Nanosecond()))
}

type decoder struct {
	b   []byte
	err error
}

var errShort = errors.New("record cut short")

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) str() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) time() time.Time {
	sec := d.varint()
	ns := d.uvarint()
	if d.err != nil {
		return time.Time{}
	}
	return time.Unix(sec, int64(ns)).UTC()
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errShort
	}
	d.b = nil
}
