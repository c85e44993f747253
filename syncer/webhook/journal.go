package webhook

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"strconv"
	"sync"
	"syscall"

	"github.com/cekat-archiver/cekat-archiver/sink"
)

// Journal keeps, on local disk, the events accepted while ClickHouse could
// not store them, until Replay writes them to ClickHouse. An event is
// answered 202 once it is in ClickHouse or synced to the journal's file,
// so an outage of ClickHouse loses no event a sender was told was taken.
//
// The file holds one record a line: the CRC-32 (Castagnoli) of the JSON in
// 8 hex digits, a space, the event as JSON. A line cut short by a crash
// fails its check and is skipped, as is a damaged one: the others are kept.
// A nil *Journal keeps nothing.
type Journal struct {
	replaying sync.Mutex // one replay at a time
	mu        sync.Mutex
	path      string
	max       int64
	f         *os.File
	size      int64
	ids       map[string]bool
	count     int // records in the file
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// journalRecord is what a line holds.
type journalRecord struct {
	EventID        string `json:"event_id"`
	ReceivedAt     int64  `json:"received_at_ns"`
	Event          string `json:"event"`
	ConversationID string `json:"conversation_id,omitempty"`
	MessageID      string `json:"message_id,omitempty"`
	Raw            string `json:"raw"`
	Version        uint64 `json:"version"`
}

// ErrJournalFull is returned by Append when the journal holds max bytes.
var ErrJournalFull = errors.New("the webhook journal is full")

// ErrJournalInUse is returned by OpenJournal when another process holds the
// journal.
var ErrJournalInUse = errors.New("another process holds the webhook journal")

// OpenJournal opens (or creates) the journal at path; max bounds its size
// in bytes.
func OpenJournal(path string, max int64) (*Journal, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open the webhook journal: %w", err)
	}
	// One process at a time: a replay empties the file.
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: %s (%v)", ErrJournalInUse, path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("webhook journal: %w", err)
	}
	j := &Journal{path: path, max: max, f: f, ids: map[string]bool{}, size: fi.Size()}
	events, _, err := j.read(0, j.size)
	if err != nil {
		f.Close()
		return nil, err
	}
	for _, e := range events {
		j.ids[e.EventID] = true
	}
	j.count = len(events)
	return j, nil
}

// Path is the journal's file.
func (j *Journal) Path() string {
	if j == nil {
		return ""
	}
	return j.path
}

// Len is the number of events waiting in the journal.
func (j *Journal) Len() int {
	if j == nil {
		return 0
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.count
}

// Has reports whether the event waits in the journal.
func (j *Journal) Has(id string) bool {
	if j == nil {
		return false
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.ids[id]
}

// Append writes the event and syncs the file before it returns.
func (j *Journal) Append(e sink.WebhookEvent) error {
	body, err := json.Marshal(journalRecord{EventID: e.EventID, ReceivedAt: e.ReceivedAt.UnixNano(), Event: e.Event,
		ConversationID: e.ConversationID, MessageID: e.MessageID, Raw: e.Raw, Version: e.Version})
	if err != nil {
		return fmt.Errorf("webhook journal: %w", err)
	}
	line := make([]byte, 0, len(body)+10)
	line = fmt.Appendf(line, "%08x ", crc32.Checksum(body, crcTable))
	line = append(append(line, body...), '\n')
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.size+int64(len(line)) > j.max {
		return fmt.Errorf("%w (%d bytes wait for ClickHouse)", ErrJournalFull, j.size)
	}
	n, err := j.f.Write(line)
	j.size += int64(n)
	if err == nil {
		err = j.f.Sync()
	}
	if err != nil {
		return fmt.Errorf("write the webhook journal %s (local disk): %w", j.path, err)
	}
	j.ids[e.EventID] = true
	j.count++
	return nil
}

// Replay stores what the journal holds and removes it from the journal; it
// returns how many events it stored and how many damaged records it
// skipped. ClickHouse is written without holding the journal: events keep
// being taken (and kept) meanwhile, and stay for the next replay.
func (j *Journal) Replay(ctx context.Context, store Store) (stored, skipped int, err error) {
	if j == nil {
		return 0, 0, nil
	}
	j.replaying.Lock()
	defer j.replaying.Unlock()
	j.mu.Lock()
	upto := j.size
	var events []sink.WebhookEvent
	if upto > 0 {
		events, skipped, err = j.read(0, upto)
	}
	j.mu.Unlock()
	if upto == 0 || err != nil {
		return 0, skipped, err
	}
	if err := store.SaveWebhookEvents(ctx, events...); err != nil {
		return 0, skipped, err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	tail := make([]byte, j.size-upto)
	if _, err := j.f.ReadAt(tail, upto); err != nil && !errors.Is(err, io.EOF) {
		return len(events), skipped, fmt.Errorf("read the webhook journal %s: %w", j.path, err)
	}
	kept, _, err := j.read(upto, j.size-upto)
	if err != nil {
		return len(events), skipped, err
	}
	if err := j.f.Truncate(0); err != nil {
		return len(events), skipped, fmt.Errorf("empty the webhook journal %s: %w", j.path, err)
	}
	if _, err := j.f.Write(tail); err != nil {
		return len(events), skipped, fmt.Errorf("rewrite the webhook journal %s (local disk): %w", j.path, err)
	}
	if err := j.f.Sync(); err != nil {
		return len(events), skipped, fmt.Errorf("empty the webhook journal %s: %w", j.path, err)
	}
	j.size, j.count = int64(len(tail)), len(kept)
	clear(j.ids)
	for _, e := range kept {
		j.ids[e.EventID] = true
	}
	return len(events), skipped, nil
}

// Close closes the file; what it holds waits for the next start.
func (j *Journal) Close() error {
	if j == nil {
		return nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.f.Close()
}

// read returns the records of n bytes of the file from off that pass
// their check.
func (j *Journal) read(off, n int64) (events []sink.WebhookEvent, skipped int, err error) {
	r := bufio.NewReader(io.NewSectionReader(j.f, off, n))
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 {
			if e, ok := parseRecord(bytes.TrimSuffix(line, []byte("\n"))); ok {
				events = append(events, e)
			} else {
				skipped++
			}
		}
		if errors.Is(err, io.EOF) {
			return events, skipped, nil
		}
		if err != nil {
			return nil, 0, fmt.Errorf("read the webhook journal %s: %w", j.path, err)
		}
	}
}

func parseRecord(line []byte) (sink.WebhookEvent, bool) {
	if len(line) < 10 || line[8] != ' ' {
		return sink.WebhookEvent{}, false
	}
	sum, err := strconv.ParseUint(string(line[:8]), 16, 32)
	body := line[9:]
	if err != nil || uint32(sum) != crc32.Checksum(body, crcTable) {
		return sink.WebhookEvent{}, false
	}
	var r journalRecord
	if json.Unmarshal(body, &r) != nil || r.EventID == "" {
		return sink.WebhookEvent{}, false
	}
	return sink.WebhookEvent{EventID: r.EventID, ReceivedAt: unixNano(r.ReceivedAt), Event: r.Event, ConversationID: r.ConversationID,
		MessageID: r.MessageID, Raw: r.Raw, Version: r.Version}, true
}
