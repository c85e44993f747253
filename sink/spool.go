package sink

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
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
// the n bytes that follow, then a kind byte and the payload. The first
// record is the header (kindHeader): the format of the file and the
// identity of the archive it was written for. Messages are encoded in
// binary (they are the volume); the other kinds are JSON. Records are
// written in the order the archive accepted them, so a file cut anywhere
// (a torn tail) still never holds a state ahead of its rows.
//
// A kind names its encoding for good: a change to how a kind is encoded
// takes a new kind, which an older binary sets aside instead of decoding
// wrong values. spoolFormat changes only with the framing itself.

// ErrSpoolFull is returned when a write would grow the spool past its
// bound while ClickHouse does not acknowledge what the spool holds.
var ErrSpoolFull = errors.New("spool full")

// ErrSpoolDisk marks a failure of the spool's file on the local disk (no
// space left, an I/O error, no permission): the archive could not keep
// what it was given, whatever the state of ClickHouse.
var ErrSpoolDisk = errors.New("spool on the local disk failed")

// The kinds of record. Numbers are never reused (see above).
const (
	kindMessages      byte = 1
	kindQuarantine    byte = 2
	kindChecks        byte = 3
	kindConversations byte = 4
	kindState         byte = 5
	// kindMessagesSourced: kindMessages with each row's StatusSource after
	// its version; written only for rows that carry one, so a file of the
	// common rows stays readable by a binary that knows kind 1 alone.
	kindMessagesSourced byte = 6
	kindHeader          byte = 16
)

// claimsArchive says whether records of a kind state what the archive
// already holds (a walk's head and gaps, the activity a walk covered). Such
// a record is true only of the archive it was written for, and only behind
// every row written before it: it is dropped when replayed into another
// archive or after an unreadable record. Rows, quarantined records and
// schedule entries are facts of their own and are always replayed.
func claimsArchive(kind byte) bool { return kind == kindState || kind == kindConversations }

// spoolFormat is the framing this binary writes and the newest it reads.
// Format 1 had no header (its archive is unknown).
const spoolFormat = 2

// spoolHeader is the payload of a file's first record.
type spoolHeader struct {
	Format int `json:"format"`
	// Archive is the identity of the archive the file was written for
	// (Store.ArchiveID); empty for a private spool, never replayed by
	// another process.
	Archive  string    `json:"archive"`
	Database string    `json:"database"`
	Created  time.Time `json:"created"`
}

const spoolSuffix = ".spool"

// maxRecord bounds a record's length: a larger length is damage.
const maxRecord = 1 << 30

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// errNoRoom: the record does not fit in the spool's bound now.
var errNoRoom = errors.New("no room in the spool")

type spool struct {
	f    *os.File
	name string // f.Name() is the name it was created under
	size int64
	base int64 // the header's bytes: the size of an empty spool
	max  int64
	buf  []byte
}

// diskErr names the spool's file and what an operator can do about the
// failure.
func diskErr(op, path string, err error) error {
	hint := ""
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		hint = ": free space on that disk, or set sync.spool_dir to a disk that has some"
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EROFS):
		hint = ": let the archiver's user write there, or set sync.spool_dir to a directory it may write"
	case errors.Is(err, syscall.EIO):
		hint = ": the disk reports an I/O error; check it (dmesg, SMART)"
	}
	return fmt.Errorf("%w: %s %s: %w%s", ErrSpoolDisk, op, path, err, hint)
}

// openSpool creates this process's spool file in dir, locked, and writes
// its header. It is created under another name and renamed once locked, so
// that an archive looking for files to replay never takes a file whose
// owner has not locked it yet.
func openSpool(dir string, max int64, hdr spoolHeader) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, diskErr("create directory", dir, err)
	}
	f, err := os.CreateTemp(dir, "writes-*.new")
	if err != nil {
		return nil, diskErr("create a file in", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, diskErr("lock", f.Name(), err)
	}
	name := strings.TrimSuffix(f.Name(), ".new") + spoolSuffix
	if err := os.Rename(f.Name(), name); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, diskErr("rename", f.Name(), err)
	}
	s := &spool{f: f, name: name, max: max}
	hdr.Format = spoolFormat
	b, err := json.Marshal(hdr)
	if err == nil {
		err = s.appendRecord(kindHeader, func(dst []byte) []byte { return append(dst, b...) })
	}
	if err != nil {
		f.Close()
		os.Remove(name)
		return nil, err
	}
	s.base = s.size
	return s, nil
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
			return nil, diskErr("open", name, err)
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

// appendRecord writes one record, or nothing: a record that would pass the
// bound is refused with errNoRoom, and a failed write is cut off again.
func (s *spool) appendRecord(kind byte, payload func([]byte) []byte) error {
	s.buf = append(s.buf[:0], 0, 0, 0, 0, 0, 0, 0, 0, kind)
	s.buf = payload(s.buf)
	n := len(s.buf) - 8
	binary.LittleEndian.PutUint32(s.buf[0:4], uint32(n))
	binary.LittleEndian.PutUint32(s.buf[4:8], crc32.Checksum(s.buf[8:], crcTable))
	if s.size+int64(len(s.buf)) > s.max || n > maxRecord {
		return fmt.Errorf("%w: %d bytes wait and %d more would pass sync.spool_max_bytes (%d)",
			errNoRoom, s.size-s.base, len(s.buf), s.max)
	}
	if _, err := s.f.WriteAt(s.buf, s.size); err != nil {
		_ = s.f.Truncate(s.size)
		return diskErr("write", s.name, err)
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
	kind := kindMessages
	if slices.ContainsFunc(rows, func(r MessageRow) bool { return r.StatusSource != "" }) {
		kind = kindMessagesSourced
	}
	return s.appendRecord(kind, func(dst []byte) []byte {
		dst = binary.AppendUvarint(dst, uint64(len(rows)))
		for i := range rows {
			dst = encodeMessage(dst, &rows[i])
			if kind == kindMessagesSourced {
				dst = binary.AppendUvarint(dst, uint64(len(rows[i].StatusSource)))
				dst = append(dst, rows[i].StatusSource...)
			}
		}
		return dst
	})
}

// pending is how many bytes wait for ClickHouse.
func (s *spool) pending() int64 { return s.size - s.base }

// sync makes what was written durable against a crash of the machine; a
// crash of the process alone loses nothing written.
func (s *spool) sync() error {
	if err := s.f.Sync(); err != nil {
		return diskErr("sync", s.name, err)
	}
	return nil
}

// reset empties the spool, but for its header, once ClickHouse has
// acknowledged all it held.
func (s *spool) reset() error {
	if s.size == s.base {
		return nil
	}
	if err := s.f.Truncate(s.base); err != nil {
		return diskErr("empty", s.name, err)
	}
	s.size = s.base
	return nil
}

// close releases the file, removing it when empty; a spool that still holds
// writes is kept for the next archive opened on the directory.
func (s *spool) close() error {
	var err error
	if s.size == s.base {
		if err = os.Remove(s.name); err != nil {
			err = diskErr("remove", s.name, err)
		}
	} else {
		err = s.sync()
	}
	if cerr := s.f.Close(); err == nil && cerr != nil {
		err = diskErr("close", s.name, cerr)
	}
	return err
}

// errUndecodable marks a record whose checksum holds but whose payload
// this binary cannot decode: it is set aside like a damaged one.
var errUndecodable = errors.New("undecodable spool record")

// span is a stretch of a spool file, in bytes.
type span struct{ off, n int64 }

// spoolReport says what reading a spool file for a replay kept and left.
type spoolReport struct {
	// header is the file's; Format 1 when the file begins with another
	// record, 0 when its beginning is unreadable.
	header spoolHeader
	// foreign: written for another archive, or one unknown (format 1, a
	// header unreadable): its records that claim an archive are dropped.
	foreign bool
	// setAside are the stretches that could not be read, or held a record
	// this binary cannot decode, in file order.
	setAside []span
	// undecodable counts the set-aside records whose checksum held.
	undecodable int
	// dropped counts the records claiming an archive that were dropped:
	// behind an unreadable stretch, or in a foreign file.
	dropped int
}

// tornTail says whether the only stretch set aside is a cut at the end of
// the file: what a crash of the machine before the spool was synced leaves.
func (r spoolReport) tornTail(size int64) bool {
	return len(r.setAside) == 1 && r.undecodable == 0 && r.setAside[0].off+r.setAside[0].n == size
}

func (r spoolReport) setAsideBytes() int64 {
	var n int64
	for _, s := range r.setAside {
		n += s.n
	}
	return n
}

// newerFormatError refuses a file written in a format this binary cannot
// read.
type newerFormatError struct {
	file   string
	format int
}

func (e *newerFormatError) Error() string {
	return fmt.Sprintf("spool file %s was written by a newer cekat-archiver (spool format %d; this binary reads up to %d): "+
		"run that newer version once so that it replays the file, or move the file out of %s to go on without it "+
		"(the next runs then fetch again, and pay again, what it held)",
		e.file, e.format, spoolFormat, filepath.Dir(e.file))
}

// readSpool reads a spool file (r, of size bytes, named file) for a replay
// into the archive that isArchive recognises by its identity, handing use
// each record to replay, in order. A stretch it cannot read (cut short,
// out of bounds, failing its checksum) or a record use cannot decode
// (errUndecodable) is set aside, and reading goes on at the next readable
// record; records claiming an archive are dropped after such a stretch,
// and throughout a file written for another archive. A file of a newer
// format is refused before use is called. Any other error of use stops
// the reading.
func readSpool(r io.ReaderAt, size int64, file string, isArchive func(id string) (bool, error),
	use func(kind byte, payload []byte) error) (spoolReport, error) {
	rep := spoolReport{foreign: true}
	damaged := false
	err := scanSpool(r, size, func(off int64, kind byte, p []byte) error {
		if off == 0 && kind != kindHeader {
			rep.header.Format = 1 // no header: the format before it
		}
		if kind == kindHeader {
			if off != 0 {
				return nil // a header is only ever first
			}
			var h spoolHeader
			if err := strictJSON(p, &h); err != nil {
				rep.setAside = append(rep.setAside, span{off, 8 + 1 + int64(len(p))})
				rep.undecodable++
				damaged = true
				return nil
			}
			if h.Format > spoolFormat {
				return &newerFormatError{file: file, format: h.Format}
			}
			same, err := isArchive(h.Archive)
			if err != nil {
				return err
			}
			rep.header, rep.foreign = h, !same
			return nil
		}
		if claimsArchive(kind) && (damaged || rep.foreign) {
			rep.dropped++
			return nil
		}
		err := use(kind, p)
		if errors.Is(err, errUndecodable) {
			rep.setAside = append(rep.setAside, span{off, 8 + 1 + int64(len(p))})
			rep.undecodable++
			damaged = true
			return nil
		}
		return err
	}, func(off, n int64) {
		rep.setAside = append(rep.setAside, span{off, n})
		damaged = true
	})
	if re := (*readError)(nil); errors.As(err, &re) {
		err = diskErr("read", file, re.err)
	}
	return rep, err
}

// scanSpool hands fn each readable record of r (size bytes) with its
// offset, in order. A stretch it cannot read goes to bad, and the reading
// goes on at the next offset where a readable record starts (resync).
func scanSpool(r io.ReaderAt, size int64, fn func(off int64, kind byte, payload []byte) error, bad func(off, n int64)) error {
	off := int64(0)
	br := bufio.NewReaderSize(io.NewSectionReader(r, 0, size), 1<<16)
	var head [8]byte
	var rec []byte
	for off < size {
		ok := false
		if _, err := io.ReadFull(br, head[:]); err == nil {
			n := int64(binary.LittleEndian.Uint32(head[0:4]))
			if n > 0 && n <= maxRecord && off+8+n <= size {
				if int64(cap(rec)) < n {
					rec = make([]byte, n)
				}
				rec = rec[:n]
				if _, err := io.ReadFull(br, rec); err == nil && crc32.Checksum(rec, crcTable) == binary.LittleEndian.Uint32(head[4:8]) {
					if err := fn(off, rec[0], rec[1:]); err != nil {
						return err
					}
					off += 8 + n
					ok = true
				} else if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
					return errRead(err)
				}
			}
		} else if !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
			return errRead(err)
		}
		if ok {
			continue
		}
		next, err := resync(r, size, off+1)
		if err != nil {
			return err
		}
		bad(off, next-off)
		off = next
		br.Reset(io.NewSectionReader(r, off, size-off))
	}
	return nil
}

// readError is a failure to read a spool file: the local disk's.
type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

func errRead(err error) error { return &readError{err} }

// frameAt reads the record at off: ok when its length fits the file and
// its checksum holds.
func frameAt(r io.ReaderAt, size, off int64) (next int64, ok bool, err error) {
	var head [8]byte
	if off+8 > size {
		return 0, false, nil
	}
	if _, err := r.ReadAt(head[:], off); err != nil {
		return 0, false, errRead(err)
	}
	n := int64(binary.LittleEndian.Uint32(head[0:4]))
	if n == 0 || n > maxRecord || off+8+n > size {
		return 0, false, nil
	}
	rec := make([]byte, n)
	if _, err := r.ReadAt(rec, off+8); err != nil && !(errors.Is(err, io.EOF) && off+8+n == size) {
		return 0, false, errRead(err)
	}
	return off + 8 + n, crc32.Checksum(rec, crcTable) == binary.LittleEndian.Uint32(head[4:8]), nil
}

// resync finds the first offset from on where a readable record starts;
// size when none. A stretch of damage or text passes for a record only if
// its length fits and its CRC-32C holds by chance: one in 2^32.
func resync(r io.ReaderAt, size, from int64) (int64, error) {
	const window = 1 << 16
	buf := make([]byte, window+7)
	for base := from; base+8 <= size; base += window {
		n, err := r.ReadAt(buf[:min(int64(len(buf)), size-base)], base)
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, errRead(err)
		}
		for i := 0; i+8 <= n && i < window; i++ {
			off := base + int64(i)
			l := int64(binary.LittleEndian.Uint32(buf[i:]))
			if l == 0 || l > maxRecord || off+8+l > size {
				continue // the common case in damage and text: no need to read
			}
			if _, ok, err := frameAt(r, size, off); err != nil {
				return 0, err
			} else if ok {
				return off, nil
			}
		}
	}
	return size, nil
}

// setAside copies the stretches of r to a file next to the spool file,
// named after it and the time, and returns its name.
func setAside(r io.ReaderAt, file string, spans []span, now time.Time) (string, error) {
	name := file + ".corrupt-" + now.UTC().Format("20060102T150405.000000000Z")
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", diskErr("create", name, err)
	}
	for _, s := range spans {
		if _, err := io.Copy(f, io.NewSectionReader(r, s.off, s.n)); err != nil {
			f.Close()
			os.Remove(name)
			return "", diskErr("write", name, err)
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(name)
		return "", diskErr("sync", name, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(name)
		return "", diskErr("close", name, err)
	}
	return name, nil
}

// strictJSON decodes p into v, refusing fields v does not have: a payload
// of another shape is not read as this one.
func strictJSON(p []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(p))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", errUndecodable, err)
	}
	if err := d.Decode(new(json.RawMessage)); err != io.EOF {
		return fmt.Errorf("%w: bytes after the value", errUndecodable)
	}
	return nil
}

// decodeMessages decodes a kindMessages payload.
func decodeMessages(p []byte) ([]MessageRow, error) { return decodeMessagesOf(kindMessages, p) }

// decodeMessagesOf decodes a payload of kindMessages or kindMessagesSourced.
func decodeMessagesOf(kind byte, p []byte) ([]MessageRow, error) {
	d := decoder{b: p}
	n := d.uvarint()
	if d.err != nil || n > uint64(len(p)) {
		return nil, fmt.Errorf("%w: messages: bad row count", errUndecodable)
	}
	rows := make([]MessageRow, n)
	for i := range rows {
		decodeMessage(&d, &rows[i])
		if kind == kindMessagesSourced {
			rows[i].StatusSource = d.str()
		}
	}
	if d.err == nil && len(d.b) > 0 {
		d.err = fmt.Errorf("%d bytes left after %d rows", len(d.b), n)
	}
	if d.err != nil {
		return nil, fmt.Errorf("%w: messages: %w", errUndecodable, d.err)
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
	r.IsTemplate, r.Enriched = d.bool(), d.bool()
	r.SentAt = d.time()
	r.FetchedAt = d.time()
	for _, t := range [...]**time.Time{&r.DeliveredAt, &r.ReadAt, &r.UpdatedAt} {
		if d.bool() {
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

// bool reads a byte that must be 0 or 1: anything else is not this
// encoding.
func (d *decoder) bool() bool {
	switch d.byte() {
	case 0:
		return false
	case 1:
		return true
	}
	d.failWith(errors.New("a flag other than 0 or 1"))
	return false
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
	if d.err == nil && ns >= 1e9 {
		d.failWith(errors.New("nanoseconds past a second"))
	}
	if d.err != nil {
		return time.Time{}
	}
	return time.Unix(sec, int64(ns)).UTC()
}

func (d *decoder) fail() { d.failWith(errShort) }

func (d *decoder) failWith(err error) {
	if d.err == nil {
		d.err = err
	}
	d.b = nil
}
