package sink

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// blockRows bounds the rows of one block sent within the open INSERT (the
// native protocol takes many blocks in one INSERT; ClickHouse gathers them
// into one part when the INSERT ends).
const blockRows = 1000

// ArchiveOptions tune the write path.
type ArchiveOptions struct {
	// BatchRows ends the open INSERT of messages once it holds this many
	// rows (50,000). ClickHouse's cost is the number of INSERTs (a part and
	// a commit each), not the rows in them.
	BatchRows int
	// BatchBytes sends the rows waiting in memory as one block of the open
	// INSERT once they hold this many bytes of text and JSON (512 KiB), or
	// at 1,000 rows. clickhouse-go copies a block into column buffers and
	// again into its wire buffer, so memory follows it.
	BatchBytes int
	// BatchInterval ends an open INSERT at least this often (5s), so that
	// rows and the states behind them are stored while a run goes on.
	BatchInterval time.Duration
	// SpoolDir holds the spool, in a directory per database. Empty: a
	// private temporary directory removed at Close, for commands that do not
	// sync and tests: a failed INSERT is still retried within the process,
	// but a crash loses what it held.
	SpoolDir string
	// SpoolMaxBytes bounds the spool (1 GiB). A write that would pass it
	// first ends the open INSERT and writes what waits, which empties the
	// spool; it fails with ErrSpoolFull only when ClickHouse does not take
	// that.
	SpoolMaxBytes int64
	// Registerer receives the write metrics; nil leaves them unregistered.
	Registerer prometheus.Registerer
}

// writeMetrics are the archive's Prometheus metrics.
type writeMetrics struct {
	rows     *prometheus.CounterVec
	bytes    prometheus.Counter
	duration prometheus.Histogram
	failures prometheus.Counter
	spooled  prometheus.Gauge
}

func newWriteMetrics(reg prometheus.Registerer) *writeMetrics {
	const ns, sub = "cekat_archiver", "sink"
	m := &writeMetrics{
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "rows_inserted_total",
			Help: "Rows inserted into ClickHouse by table."}, []string{"table"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "messages_inserted_bytes_total",
			Help: "Approximate bytes of message rows inserted (text and raw JSON columns)."}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "flush_duration_seconds",
			Help:    "Duration of ending one INSERT of messages and writing the rows queued behind it.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12)}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "flush_failures_total",
			Help: "Writes to ClickHouse that failed; their rows stay in the spool for a retry."}),
		spooled: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "spool_bytes",
			Help: "Bytes in the spool: writes accepted and not yet acknowledged by ClickHouse."}),
	}
	if reg != nil {
		reg.MustRegister(m.rows, m.bytes, m.duration, m.failures, m.spooled)
	}
	return m
}

// Archive is the sync engine's view of the store: streamed writes of
// messages, quarantined records and sync states, and the queries a sync
// needs.
//
// Message rows go to ClickHouse as they come, in blocks of one INSERT kept
// open until it holds BatchRows rows or BatchInterval has passed. Every
// write is first appended to the spool on disk; once the INSERT is
// acknowledged, the quarantine, schedule entries, conversations and states
// queued meanwhile are written, in that order, and the spool is emptied. So
// a state is never stored ahead of the rows it describes, and a failed
// INSERT is retried from the spool, never paid for again from the API.
// Rows stored twice collapse in the ReplacingMergeTree.
type Archive struct {
	s    *Store
	opts ArchiveOptions
	log  *zap.Logger

	// writing serialises the write path (the spool, the open INSERT, the
	// queues); a channel, so that waiting for it honours a context.
	writing chan struct{}
	spool   *spool
	tempDir string // removed at Close, when SpoolDir was empty
	// archiveID is the identity of the archive the spool is written for
	// (Store.ArchiveID); empty with a private spool.
	archiveID string
	// lost: the archive no longer has that identity.
	lost bool

	ins        driver.Batch // the open INSERT of messages; nil when none
	insCancel  context.CancelFunc
	insRows    int
	block      []MessageRow // rows not sent yet
	blockBytes int
	// sending is the result of the block a goroutine of its own sends within
	// the open INSERT, while writers fill the next; nil when none. One block
	// at a time: the next full block waits for it (waitSend), which bounds
	// memory, and so does everything else that uses the INSERT.
	sending chan sendResult
	spare   []MessageRow // the sent block's slice, for the next block
	// accepted since the last acknowledgement (all in the spool)
	rows, bytes int64
	quar        []QuarantineRow
	checks      []StatusCheck
	convs       []ConversationRow
	states      map[string]State
	sendTime    time.Duration
	// failed is the error of the write that failed; until a retry from the
	// spool succeeds, writes go to the spool only.
	failed error

	bgCtx    context.Context    // of the open INSERT and background flushes
	bgCancel context.CancelFunc // cancels them when Close stops waiting
	stop     chan struct{}
	done     chan struct{}

	statsMu sync.Mutex
	stats   WriteStats
	metrics *writeMetrics
}

// WriteStats counts what the archive has written since it was opened.
type WriteStats struct {
	Flushes      int64 // INSERTs of messages acknowledged
	MessageRows  int64
	Bytes        int64 // approximate: the text columns of the rows
	InsertTime   time.Duration
	FailedWrites int64
}

// OpenArchive opens the write path: it replays the spools that archives
// of the same database left behind when they died, then starts the timer
// that ends INSERTs. Close stops it.
func OpenArchive(ctx context.Context, s *Store, opts ArchiveOptions) (*Archive, error) {
	if opts.BatchRows <= 0 {
		opts.BatchRows = 50000
	}
	if opts.BatchBytes <= 0 {
		opts.BatchBytes = 512 << 10
	}
	if opts.BatchInterval <= 0 {
		opts.BatchInterval = 5 * time.Second
	}
	if opts.SpoolMaxBytes <= 0 {
		opts.SpoolMaxBytes = 1 << 30
	}
	a := &Archive{s: s, opts: opts, log: zap.NewNop(), writing: make(chan struct{}, 1), states: map[string]State{},
		stop: make(chan struct{}), done: make(chan struct{}), metrics: newWriteMetrics(opts.Registerer)}
	if s != nil && s.log != nil {
		a.log = s.log.Named("spool")
	}
	a.bgCtx, a.bgCancel = context.WithCancel(context.Background())
	dir := opts.SpoolDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "cekat-archiver-spool-")
		if err != nil {
			return nil, fmt.Errorf("create spool directory: %w", err)
		}
		a.tempDir, dir = tmp, tmp
	} else {
		dir = filepath.Join(dir, s.Database())
		id, err := s.ArchiveID(ctx)
		if err != nil {
			return nil, err
		}
		a.archiveID = id
	}
	a.writing <- struct{}{} // no write before the replay is done
	hdr := spoolHeader{Archive: a.archiveID, Created: time.Now().UTC()}
	if s != nil {
		hdr.Database = s.Database()
	}
	sp, err := openSpool(dir, opts.SpoolMaxBytes, hdr)
	if err != nil {
		return nil, errors.Join(err, a.closeSpool())
	}
	a.spool = sp
	if err := a.replayOrphans(ctx, dir); err != nil {
		return nil, errors.Join(err, a.closeSpool())
	}
	a.unlock()
	go a.timer()
	return a, nil
}

// replayOrphans writes what the spools of dead processes hold, each file
// whole (rows, then what was queued behind them), and removes them.
func (a *Archive) replayOrphans(ctx context.Context, dir string) error {
	files, err := orphanSpools(dir)
	if err != nil {
		return err
	}
	defer closeAll(files)
	for _, f := range files {
		fi, err := f.Stat()
		if err != nil {
			return fmt.Errorf("spool %s: %w", f.Name(), err)
		}
		if fi.Size() > 0 {
			n, err := a.replay(ctx, f, fi.Size(), f.Name())
			if err != nil {
				return fmt.Errorf("replay spool %s: %w", f.Name(), err)
			}
			if n > 0 {
				a.log.Info("replayed the spool of an archiver that stopped before ClickHouse acknowledged it",
					zap.String("file", f.Name()), zap.Int64("bytes", fi.Size()), zap.Int("records", n))
			}
		}
		if err := os.Remove(f.Name()); err != nil {
			return diskErr("remove the replayed spool", f.Name(), err)
		}
	}
	return nil
}

func (a *Archive) timer() {
	defer close(a.done)
	t := time.NewTicker(a.opts.BatchInterval)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(a.bgCtx, time.Minute)
			_ = a.Flush(ctx) // a failure stays in a.failed: the next write or flush retries
			cancel()
		}
	}
}

// Close stops the timer and writes what waits. It returns when that is done
// or when ctx ends, whichever comes first: then a write still running is
// cancelled. Whatever was not acknowledged stays in the spool for the next
// archive opened on the directory (lost with a private spool).
func (a *Archive) Close(ctx context.Context) error {
	select {
	case <-a.stop:
	default:
		close(a.stop)
	}
	select {
	case <-a.done:
	case <-ctx.Done():
		a.bgCancel()
		err := fmt.Errorf("close archive: writes not acknowledged are left in the spool: %w", ctx.Err())
		select {
		case a.writing <- struct{}{}:
			err = errors.Join(err, a.closeSpool())
		default: // a write still stuck keeps the file; the process's end releases it
		}
		return err
	}
	defer a.bgCancel()
	err := a.Flush(ctx)
	a.writing <- struct{}{}
	return errors.Join(err, a.closeSpool())
}

// closeSpool releases the spool; the caller holds a.writing.
func (a *Archive) closeSpool() error {
	defer a.unlock()
	var err error
	a.abortInsert()
	if a.spool != nil {
		err = a.spool.close()
		a.spool = nil
	}
	if a.tempDir != "" {
		err = errors.Join(err, os.RemoveAll(a.tempDir))
		a.tempDir = ""
	}
	a.bgCancel()
	return err
}

func (a *Archive) lock(ctx context.Context) error {
	select {
	case a.writing <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("write to the archive: %w", ctx.Err())
	}
	if a.spool == nil {
		a.unlock()
		return errors.New("write to the archive: closed")
	}
	return nil
}

func (a *Archive) unlock() { <-a.writing }

// Stats returns the write counters.
func (a *Archive) Stats() WriteStats {
	a.statsMu.Lock()
	defer a.statsMu.Unlock()
	return a.stats
}

// AddMessages spools message rows and sends them on in blocks of the open
// INSERT, ending it when it is full. After a failed write it retries from
// the spool at once: the rows are kept either way, and an error says that
// ClickHouse still fails; ErrSpoolFull that the rows were refused.
func (a *Archive) AddMessages(ctx context.Context, rows ...MessageRow) error {
	if len(rows) == 0 {
		return nil
	}
	if err := a.lock(ctx); err != nil {
		return err
	}
	defer a.unlock()
	if err := a.append(ctx, func() error { return a.spool.appendMessages(rows) }); err != nil {
		return err
	}
	a.rows += int64(len(rows))
	for i := range rows {
		a.bytes += int64(rows[i].size())
	}
	a.metrics.spooled.Set(float64(a.spool.pending()))
	if a.failed != nil {
		return a.retry(ctx)
	}
	if err := a.queue(rows); err != nil {
		return a.fail(err)
	}
	if a.insRows+len(a.block) >= a.opts.BatchRows {
		return a.commit(ctx)
	}
	return nil
}

// append writes one record to the spool. A record that would pass the
// spool's bound first ends the open INSERT and writes what waits behind it
// (after a failed write, retries it), which empties the spool: the bound
// refuses a write only while ClickHouse does not take what the spool holds.
// The caller holds a.writing.
func (a *Archive) append(ctx context.Context, write func() error) error {
	err := write()
	if !errors.Is(err, errNoRoom) {
		return err
	}
	waiting := a.spool.pending()
	var ferr error
	if a.failed != nil {
		ferr = a.retry(ctx)
	} else {
		ferr = a.commit(ctx)
	}
	if errors.Is(ferr, ErrSpoolDisk) {
		return ferr
	}
	if ferr != nil {
		return fmt.Errorf("%w: %d bytes wait in the spool for ClickHouse, which did not take them: %w", ErrSpoolFull, waiting, ferr)
	}
	if err := write(); errors.Is(err, errNoRoom) {
		return fmt.Errorf("%w: one write is larger than the whole spool: raise sync.spool_max_bytes (%s)", ErrSpoolFull, err)
	} else if err != nil {
		return err
	}
	return nil
}

// queue adds rows to the block, sending each block as it fills.
func (a *Archive) queue(rows []MessageRow) error {
	for i := range rows {
		a.block = append(a.block, rows[i])
		a.blockBytes += rows[i].size()
		if len(a.block) >= blockRows || a.blockBytes >= a.opts.BatchBytes {
			if err := a.sendBlock(); err != nil {
				return err
			}
		}
	}
	return nil
}

// sendResult is what sending a block came to.
type sendResult struct {
	block []MessageRow // emptied
	took  time.Duration
	err   error
}

// serverBlockRows is how many rows ClickHouse gathers before it writes a part
// of the open INSERT. Its default (about a million) keeps every row of the
// INSERT in the server's memory and writes them all when the INSERT ends,
// while the writers wait: 0.5-1 s for 20,000 messages. Written as they come,
// the parts cost the server the same and the end of an INSERT waits for at
// most this many rows. An INSERT that fails halfway leaves the parts already
// written; its retry from the spool writes the same rows (same versions)
// again, which ReplacingMergeTree and the rollup's uniqExact states absorb.
const serverBlockRows = 10000

// sendBlock hands the block to a goroutine that sends it within the open
// INSERT, opening one if needed; it first waits for the block sent before,
// and returns that send's error.
func (a *Archive) sendBlock() error {
	if len(a.block) == 0 {
		return nil
	}
	if err := a.waitSend(); err != nil {
		return err
	}
	if a.ins == nil {
		// Not the caller's context: the INSERT outlives the call.
		ctx, cancel := context.WithCancel(a.bgCtx)
		ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"min_insert_block_size_rows": serverBlockRows}))
		b, err := a.s.conn.PrepareBatch(ctx, "INSERT INTO "+a.s.TableName("messages")+" ("+messageColumns+")")
		if err != nil {
			cancel()
			return fmt.Errorf("open messages insert: %w", err)
		}
		a.ins, a.insCancel = b, cancel
	}
	ins, block, done := a.ins, a.block, make(chan sendResult, 1)
	a.block, a.spare, a.blockBytes = a.spare[:0], nil, 0
	a.insRows += len(block)
	a.sending = done
	go func() {
		start := time.Now()
		err := appendMessageColumns(ins, block)
		if err == nil {
			if err = ins.Flush(); err != nil {
				err = fmt.Errorf("send %d messages: %w", len(block), err)
			}
		}
		clear(block) // the strings go with the rows
		done <- sendResult{block: block[:0], took: time.Since(start), err: err}
	}()
	return nil
}

// waitSend waits for the block being sent, if any, and returns its error.
func (a *Archive) waitSend() error {
	if a.sending == nil {
		return nil
	}
	res := <-a.sending
	a.sending, a.spare = nil, res.block
	a.sendTime += res.took
	return res.err
}

// commit ends the open INSERT, then writes the rows queued behind it, and
// empties the spool once all is acknowledged.
func (a *Archive) commit(ctx context.Context) error {
	if a.ins == nil && len(a.block) == 0 && len(a.quar)+len(a.checks)+len(a.convs)+len(a.states) == 0 {
		return a.spool.reset() // nothing waits
	}
	start := time.Now()
	if err := a.sendBlock(); err != nil {
		return a.fail(err)
	}
	if err := a.waitSend(); err != nil {
		return a.fail(err)
	}
	// The INSERT's rows are durable before it is ended; a failure after this
	// leaves them in the spool only.
	if err := a.spool.sync(); err != nil {
		return a.fail(err)
	}
	if a.ins != nil {
		rows := a.insRows
		stop := context.AfterFunc(ctx, a.insCancel) // honours ctx while ClickHouse acknowledges
		err := a.ins.Send()
		stop()
		a.insCancel()
		a.ins, a.insRows = nil, 0
		if err != nil {
			return a.fail(fmt.Errorf("insert %d messages: %w", rows, err))
		}
	}
	if err := a.checkIdentity(ctx); err != nil {
		return a.fail(err)
	}
	err := a.insertQuarantine(ctx, a.quar)
	if err == nil {
		err = a.insertChecks(ctx, a.checks)
	}
	if err == nil {
		err = a.insertConversations(ctx, a.convs)
	}
	if err == nil {
		err = a.insertStates(ctx, a.states)
	}
	if err == nil {
		err = a.spool.reset()
	}
	if err != nil {
		return a.fail(err)
	}
	elapsed := time.Since(start) + a.sendTime
	a.statsMu.Lock()
	if a.rows > 0 {
		a.stats.Flushes++
	}
	a.stats.MessageRows += a.rows
	a.stats.Bytes += a.bytes
	a.stats.InsertTime += elapsed
	a.statsMu.Unlock()
	a.metrics.duration.Observe(elapsed.Seconds())
	a.metrics.bytes.Add(float64(a.bytes))
	a.metrics.rows.WithLabelValues("messages").Add(float64(a.rows))
	a.metrics.rows.WithLabelValues("quarantine").Add(float64(len(a.quar)))
	a.metrics.rows.WithLabelValues("status_checks").Add(float64(len(a.checks)))
	a.metrics.rows.WithLabelValues("conversations").Add(float64(len(a.convs)))
	a.metrics.rows.WithLabelValues("sync_state").Add(float64(len(a.states)))
	a.metrics.spooled.Set(float64(a.spool.pending()))
	a.forget()
	return nil
}

// checkIdentity drops the sync states and conversation rows queued when
// the archive is no longer the one this process opened (dropped and made
// again under it): they describe rows of the other. Rows are written.
func (a *Archive) checkIdentity(ctx context.Context) error {
	if a.archiveID == "" || len(a.states)+len(a.convs) == 0 {
		return nil
	}
	if !a.lost {
		same, err := a.s.hasArchiveID(ctx, a.archiveID)
		if err != nil {
			return err
		}
		a.lost = !same
	}
	if a.lost {
		a.log.Error("the archive was dropped and made again while this process wrote to it: its sync states are no "+
			"longer written (rows are); restart the archiver", zap.String("archive", a.archiveID),
			zap.Int("dropped", len(a.states)+len(a.convs)))
		a.states, a.convs = map[string]State{}, nil
	}
	return nil
}

// forget drops what is queued in memory: acknowledged, or still in the spool.
func (a *Archive) forget() {
	clear(a.block)
	a.block, a.blockBytes = a.block[:0], 0
	a.rows, a.bytes, a.sendTime = 0, 0, 0
	a.quar, a.checks, a.convs, a.states = nil, nil, nil, map[string]State{}
}

// fail abandons the open INSERT after a failed write: what it held is in
// the spool, synced, for a retry.
func (a *Archive) fail(err error) error {
	a.abortInsert()
	a.failed = err
	if serr := a.spool.sync(); serr != nil {
		err = errors.Join(err, serr)
	}
	a.statsMu.Lock()
	a.stats.FailedWrites++
	a.statsMu.Unlock()
	a.metrics.failures.Inc()
	if errors.Is(err, ErrSpoolDisk) {
		return fmt.Errorf("keep rows for ClickHouse: %w", err)
	}
	return fmt.Errorf("write to ClickHouse: rows kept in the spool for a retry: %w", err)
}

func (a *Archive) abortInsert() {
	_ = a.waitSend() // the INSERT is dropped: its error does not matter
	if a.ins != nil {
		_ = a.ins.Abort() // closes the connection: ClickHouse drops the INSERT
		a.insCancel()
		a.ins, a.insRows = nil, 0
	}
}

// retry writes again everything the spool holds. The replay asks the
// archive whether it is still the one the spool was written for: one
// dropped and made again meanwhile takes the rows but not the states.
func (a *Archive) retry(ctx context.Context) error {
	a.abortInsert()
	if _, err := a.replay(ctx, a.spool.f, a.spool.size, a.spool.name); err != nil {
		return err
	}
	a.failed = nil
	return nil
}

// replay reads a spool file (r, of size bytes, named file) into the write
// path, in its order, and commits it: the messages stream into one INSERT,
// what was queued behind them follows. What cannot be read is set aside in
// a file next to it (see readSpool); sync states and conversation rows are
// dropped when the file was written for another archive than this one, or
// stand behind what could not be read: a state is true only of the rows
// its archive acknowledged, and replayed elsewhere it would leave a hole.
// It returns how many records it replayed.
func (a *Archive) replay(ctx context.Context, r io.ReaderAt, size int64, file string) (int, error) {
	a.forget()
	var replayed int64
	records := 0
	rep, err := readSpool(r, size, file, func(id string) (bool, error) {
		same, err := a.isArchive(ctx, id)
		if err != nil {
			return false, a.fail(err)
		}
		return same, nil
	},
		func(kind byte, p []byte) error {
			records++
			switch kind {
			case kindMessages, kindMessagesSourced:
				rows, err := decodeMessagesOf(kind, p)
				if err != nil {
					return err
				}
				replayed += int64(len(rows))
				a.rows += int64(len(rows))
				for i := range rows {
					a.bytes += int64(rows[i].size())
				}
				if err := a.queue(rows); err != nil {
					return a.fail(err)
				}
				return nil
			case kindQuarantine:
				return strictAppend(p, &a.quar)
			case kindChecks:
				return strictAppend(p, &a.checks)
			case kindConversations:
				return strictAppend(p, &a.convs)
			case kindState:
				var st State
				if err := strictJSON(p, &st); err != nil {
					return fmt.Errorf("state: %w", err)
				}
				a.queueState(st)
				return nil
			}
			return fmt.Errorf("%w: a record of kind %d, which this binary does not know (written by a newer version?)",
				errUndecodable, kind)
		})
	if err != nil {
		a.abortInsert()
		return 0, err
	}
	aside := ""
	if len(rep.setAside) > 0 {
		if aside, err = setAside(r, file, rep.setAside, time.Now()); err != nil {
			a.abortInsert()
			return 0, err
		}
	}
	if err := a.commit(ctx); err != nil {
		if aside != "" {
			os.Remove(aside) // the file still holds it: the next replay sets it aside again
		}
		return 0, err
	}
	a.reportReplay(rep, size, file, aside, replayed)
	return records - rep.undecodable, nil
}

// reportReplay logs what a replay could not keep, what it did instead and
// what is left to do.
func (a *Archive) reportReplay(rep spoolReport, size int64, file, aside string, rows int64) {
	switch {
	case rep.foreign && rep.header.Format == 1:
		a.log.Warn("the spool file was written by an older cekat-archiver, which did not record its archive: its rows "+
			"were written, its sync states and conversation rows dropped (the next run walks those conversations again; "+
			"no message is left out)", zap.String("file", file), zap.Int64("rows", rows), zap.Int("dropped", rep.dropped))
	case rep.foreign:
		a.log.Warn("the spool file was written for another archive (this database was dropped and made again, restored "+
			"from a backup, or the spool directory served another server): its rows were written, its sync states and "+
			"conversation rows dropped (the next run walks those conversations again; no message is left out)",
			zap.String("file", file), zap.String("written_for", rep.header.Archive), zap.String("archive", a.archiveID),
			zap.Int64("rows", rows), zap.Int("dropped", rep.dropped))
	}
	if aside == "" {
		return
	}
	if rep.tornTail(size) {
		a.log.Warn("the spool file ends in a record cut short, what a crash of the machine before the spool was synced "+
			"leaves: it was moved aside, and the next runs fetch again what it held; the moved file can be deleted",
			zap.String("file", file), zap.String("moved_to", aside), zap.Int64("bytes", rep.setAsideBytes()))
		return
	}
	offsets := make([]int64, 0, len(rep.setAside))
	for _, s := range rep.setAside {
		offsets = append(offsets, s.off)
	}
	a.log.Error("part of the spool file could not be read (damaged on disk, or written by a newer version): it was "+
		"moved aside; every readable record around it was replayed, and the sync states and conversation rows behind "+
		"it were dropped, so the next run fetches again what the unreadable part held. Nothing else to do: the moved "+
		"file can be deleted once looked at; if this happens again, check the disk of sync.spool_dir",
		zap.String("file", file), zap.String("moved_to", aside), zap.Int64("bytes", rep.setAsideBytes()),
		zap.Int64s("offsets", offsets), zap.Int("undecodable_records", rep.undecodable), zap.Int64("rows", rows),
		zap.Int("dropped", rep.dropped))
}

// isArchive says whether id is this archive's identity, or was made for it
// (two processes migrating at once may each have made one). A private
// spool's empty id is its own archive's.
func (a *Archive) isArchive(ctx context.Context, id string) (bool, error) {
	if a.archiveID == "" || id == "" {
		return a.archiveID == id, nil
	}
	return a.s.hasArchiveID(ctx, id)
}

func strictAppend[T any](p []byte, dst *[]T) error {
	var v []T
	if err := strictJSON(p, &v); err != nil {
		return fmt.Errorf("%T: %w", v, err)
	}
	*dst = append(*dst, v...)
	return nil
}

// AddQuarantine queues records that could not be decoded, skipping those
// already quarantined for the same conversation and endpoint, and returns
// how many it queued.
func (a *Archive) AddQuarantine(ctx context.Context, rows ...QuarantineRow) (int, error) {
	if len(rows) == 0 {
		return 0, nil
	}
	byConv := map[string][]uint64{}
	for i := range rows {
		rows[i].RawHash = quarantineKeyHash(rows[i])
		byConv[rows[i].ConversationID] = append(byConv[rows[i].ConversationID], rows[i].RawHash)
	}
	seen := map[quarantineKey]bool{}
	for conv, hashes := range byConv {
		q, err := a.s.conn.Query(ctx, "SELECT endpoint, raw_hash FROM "+a.s.TableName("quarantine")+
			" WHERE conversation_id = ? AND has(?, raw_hash)", conv, hashes)
		if err != nil {
			return 0, fmt.Errorf("query quarantine: %w", err)
		}
		for q.Next() {
			k := quarantineKey{conv: conv}
			if err := q.Scan(&k.endpoint, &k.hash); err != nil {
				q.Close()
				return 0, fmt.Errorf("scan quarantine: %w", err)
			}
			seen[k] = true
		}
		err = q.Err()
		q.Close()
		if err != nil {
			return 0, fmt.Errorf("query quarantine: %w", err)
		}
	}
	if err := a.lock(ctx); err != nil {
		return 0, err
	}
	defer a.unlock()
	for _, r := range a.quar {
		seen[quarantineKey{r.ConversationID, r.Endpoint, r.RawHash}] = true
	}
	var fresh []QuarantineRow
	for _, r := range rows {
		k := quarantineKey{r.ConversationID, r.Endpoint, r.RawHash}
		if !seen[k] {
			seen[k] = true
			fresh = append(fresh, r)
		}
	}
	if len(fresh) == 0 {
		return 0, nil
	}
	if err := a.append(ctx, func() error { return a.spool.appendJSON(kindQuarantine, fresh) }); err != nil {
		return 0, err
	}
	a.quar = append(a.quar, fresh...)
	return len(fresh), nil
}

type quarantineKey struct {
	conv, endpoint string
	hash           uint64
}

// quarantineKeyHash identifies a record across answers: by its id when it
// has one (its content may change from one answer to the next, a status
// moving on), else by its content.
func quarantineKeyHash(r QuarantineRow) uint64 {
	if r.MessageID != "" {
		return rawHash("id:" + r.MessageID)
	}
	return rawHash(r.Raw)
}

func rawHash(raw string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(raw))
	return h.Sum64()
}

// AddState queues a conversation's state behind the rows queued so far.
func (a *Archive) AddState(ctx context.Context, st State) error {
	if err := a.lock(ctx); err != nil {
		return err
	}
	defer a.unlock()
	if err := a.append(ctx, func() error { return a.spool.appendJSON(kindState, st) }); err != nil {
		return err
	}
	a.queueState(st)
	return nil
}

func (a *Archive) queueState(st State) {
	if old, ok := a.states[st.ConversationID]; !ok || st.Version >= old.Version {
		a.states[st.ConversationID] = st
	}
}

// AddConversations queues conversation rows behind the message rows queued
// so far.
func (a *Archive) AddConversations(ctx context.Context, rows ...ConversationRow) error {
	if len(rows) == 0 {
		return nil
	}
	if err := a.lock(ctx); err != nil {
		return err
	}
	defer a.unlock()
	if err := a.append(ctx, func() error { return a.spool.appendJSON(kindConversations, rows) }); err != nil {
		return err
	}
	a.convs = append(a.convs, rows...)
	return nil
}

// AddChecks queues re-check schedule entries behind the rows queued so far.
func (a *Archive) AddChecks(ctx context.Context, checks ...StatusCheck) error {
	if len(checks) == 0 {
		return nil
	}
	if err := a.lock(ctx); err != nil {
		return err
	}
	defer a.unlock()
	if err := a.append(ctx, func() error { return a.spool.appendJSON(kindChecks, checks) }); err != nil {
		return err
	}
	a.checks = append(a.checks, checks...)
	return nil
}

// Flush ends the open INSERT and writes everything queued behind it; after
// a failed write, it retries from the spool.
func (a *Archive) Flush(ctx context.Context) error {
	if err := a.lock(ctx); err != nil {
		return err
	}
	defer a.unlock()
	if a.failed != nil {
		return a.retry(ctx)
	}
	return a.commit(ctx)
}

func (r *MessageRow) size() int {
	return len(r.ConversationID) + len(r.MessageID) + len(r.Text) + len(r.Raw) + len(r.DetailRaw) + len(r.MediaURL) +
		len(r.Caption) + len(r.SenderName) + len(r.EnrichError) + 120
}

const messageColumns = "conversation_id, message_id, direction, type, status, text, media_url, caption, filename, " +
	"sender_name, sender_phone, sender_id, sender_type, sender_role, recipient_phone, reply_to, is_template, sent_at, sent_at_ns, " +
	"delivered_at, read_at, updated_at, enriched, enrich_error, raw, detail_raw, fetched_at, version, status_source"

// appendMessageColumns appends rows to the batch's block whole columns at a
// time: appending row by row converts every value through reflection,
// twice the CPU of clickhouse-client per row.
func appendMessageColumns(b driver.Batch, rows []MessageRow) error {
	n := len(rows)
	str := func(f func(*MessageRow) string) []string {
		col := make([]string, n)
		for i := range rows {
			col[i] = f(&rows[i])
		}
		return col
	}
	u8 := func(f func(*MessageRow) bool) []uint8 {
		col := make([]uint8, n)
		for i := range rows {
			col[i] = boolU8(f(&rows[i]))
		}
		return col
	}
	times := func(f func(*MessageRow) time.Time) []time.Time {
		col := make([]time.Time, n)
		for i := range rows {
			col[i] = dt(f(&rows[i]))
		}
		return col
	}
	nullTimes := func(f func(*MessageRow) *time.Time) []*time.Time {
		col := make([]*time.Time, n)
		for i := range rows {
			col[i] = dtp(f(&rows[i]))
		}
		return col
	}
	sentNs := make([]uint32, n)
	versions := make([]uint64, n)
	for i := range rows {
		sentNs[i] = uint32(rows[i].SentAt.Nanosecond())
		versions[i] = rows[i].Version
	}
	columns := []any{ // in the order of messageColumns
		str(func(r *MessageRow) string { return r.ConversationID }),
		str(func(r *MessageRow) string { return r.MessageID }),
		str(func(r *MessageRow) string { return r.Direction }),
		str(func(r *MessageRow) string { return r.Type }),
		str(func(r *MessageRow) string { return r.Status }),
		str(func(r *MessageRow) string { return r.Text }),
		str(func(r *MessageRow) string { return r.MediaURL }),
		str(func(r *MessageRow) string { return r.Caption }),
		str(func(r *MessageRow) string { return r.Filename }),
		str(func(r *MessageRow) string { return r.SenderName }),
		str(func(r *MessageRow) string { return r.SenderPhone }),
		str(func(r *MessageRow) string { return r.SenderID }),
		str(func(r *MessageRow) string { return r.SenderType }),
		str(func(r *MessageRow) string {
			if r.SenderRole == "" {
				return SenderRole(r.Direction, r.SenderType)
			}
			return r.SenderRole
		}),
		str(func(r *MessageRow) string { return r.RecipientPhone }),
		str(func(r *MessageRow) string { return r.ReplyTo }),
		u8(func(r *MessageRow) bool { return r.IsTemplate }),
		times(func(r *MessageRow) time.Time { return r.SentAt }),
		sentNs,
		nullTimes(func(r *MessageRow) *time.Time { return r.DeliveredAt }),
		nullTimes(func(r *MessageRow) *time.Time { return r.ReadAt }),
		nullTimes(func(r *MessageRow) *time.Time { return r.UpdatedAt }),
		u8(func(r *MessageRow) bool { return r.Enriched }),
		str(func(r *MessageRow) string { return r.EnrichError }),
		str(func(r *MessageRow) string { return r.Raw }),
		str(func(r *MessageRow) string { return r.DetailRaw }),
		times(func(r *MessageRow) time.Time { return r.FetchedAt }),
		versions,
		str(func(r *MessageRow) string { return r.StatusSource }),
	}
	for i, col := range columns {
		if err := b.Column(i).Append(col); err != nil {
			return fmt.Errorf("messages column %d: %w", i, err)
		}
	}
	return nil
}
