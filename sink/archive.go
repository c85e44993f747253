package sink

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
)

// ArchiveOptions bound the write buffer.
type ArchiveOptions struct {
	BatchRows int // flush when this many message rows wait (10,000)
	// BatchBytes flushes when the waiting message rows hold this many bytes
	// of text and JSON (4 MiB). clickhouse-go copies a batch into growing
	// column buffers and encodes it again, so memory follows batch bytes.
	BatchBytes    int
	BatchInterval time.Duration // flush at least this often while rows wait (5s)
	// Registerer receives the write metrics; nil leaves them unregistered.
	Registerer prometheus.Registerer
}

// writeMetrics are the archive's Prometheus metrics.
type writeMetrics struct {
	rows     *prometheus.CounterVec
	bytes    prometheus.Counter
	duration prometheus.Histogram
	failures prometheus.Counter
}

func newWriteMetrics(reg prometheus.Registerer) *writeMetrics {
	const ns, sub = "cekat_archiver", "sink"
	m := &writeMetrics{
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "rows_inserted_total",
			Help: "Rows inserted into ClickHouse by table."}, []string{"table"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "messages_inserted_bytes_total",
			Help: "Approximate bytes of message rows inserted (text and raw JSON columns)."}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "flush_duration_seconds",
			Help: "Duration of one flush of the write buffer to ClickHouse.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 12)}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "flush_failures_total",
			Help: "Flushes that failed; their rows stay buffered for the next flush."}),
	}
	if reg != nil {
		reg.MustRegister(m.rows, m.bytes, m.duration, m.failures)
	}
	return m
}

// Archive is the sync engine's view of the store: buffered writes of
// messages, quarantined records and sync states, and the queries a sync
// needs.
//
// Writes are flushed in the order messages, quarantine, status checks,
// conversations, states, and a failed flush keeps the whole buffer for the next one. So a state is never
// stored ahead of the rows it describes: after a crash the stored state is
// behind the archive, never ahead of it. Rows stored twice collapse in the
// ReplacingMergeTree.
type Archive struct {
	s    *Store
	opts ArchiveOptions

	// flushing serialises flushes, so that a later state does not pass
	// earlier rows; a channel, so that waiting for it honours a context.
	flushing chan struct{}

	mu     sync.Mutex // guards the buffers and bgErr
	msgs   []MessageRow
	bytes  int // of msgs
	quar   []QuarantineRow
	checks []StatusCheck
	convs  []ConversationRow
	states map[string]State
	// bgErr is the error of a failed background flush not yet repaired: a
	// later successful flush clears it, and the next write retries the
	// buffer instead of failing on it.
	bgErr    error
	bgCtx    context.Context    // of background flushes
	bgCancel context.CancelFunc // cancels them when Close stops waiting

	stop    chan struct{}
	done    chan struct{}
	stats   WriteStats
	metrics *writeMetrics
}

// WriteStats counts what the archive has written since it was opened.
type WriteStats struct {
	Flushes      int64
	MessageRows  int64
	Bytes        int64 // approximate: the text columns of the rows
	InsertTime   time.Duration
	FailedWrites int64
}

// NewArchive starts the write buffer and its flush timer. Close stops it.
func NewArchive(s *Store, opts ArchiveOptions) *Archive {
	if opts.BatchRows <= 0 {
		opts.BatchRows = 10000
	}
	if opts.BatchBytes <= 0 {
		opts.BatchBytes = 4 << 20
	}
	if opts.BatchInterval <= 0 {
		opts.BatchInterval = 5 * time.Second
	}
	a := &Archive{s: s, opts: opts, states: map[string]State{}, stop: make(chan struct{}), done: make(chan struct{}),
		flushing: make(chan struct{}, 1), metrics: newWriteMetrics(opts.Registerer)}
	a.bgCtx, a.bgCancel = context.WithCancel(context.Background())
	go a.timer()
	return a
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
			_ = a.flush(ctx, true) // kept in bgErr until repaired
			cancel()
		}
	}
}

// Close stops the flush timer and flushes what waits. It returns when that
// is done or when ctx ends, whichever comes first: then a background flush
// still running is cancelled and the rows still buffered are not written.
// No state is written ahead of them, so a later run fetches them again.
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
		return fmt.Errorf("close archive: rows still buffered are not written: %w", ctx.Err())
	}
	defer a.bgCancel()
	return a.Flush(ctx)
}

// Stats returns the write counters.
func (a *Archive) Stats() WriteStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stats
}

// AddMessages queues message rows, flushing when the batch is full. After a
// failed background flush it flushes at once: the rows are buffered either
// way, and an error says that ClickHouse still fails (the rows stay buffered
// for the next flush); a failure already repaired is not reported.
func (a *Archive) AddMessages(ctx context.Context, rows ...MessageRow) error {
	a.mu.Lock()
	a.msgs = append(a.msgs, rows...)
	for i := range rows {
		a.bytes += rows[i].size()
	}
	full := a.bgErr != nil || len(a.msgs) >= a.opts.BatchRows || a.bytes >= a.opts.BatchBytes
	a.mu.Unlock()
	if full {
		return a.Flush(ctx)
	}
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
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range a.quar {
		seen[quarantineKey{r.ConversationID, r.Endpoint, r.RawHash}] = true
	}
	n := 0
	for _, r := range rows {
		k := quarantineKey{r.ConversationID, r.Endpoint, r.RawHash}
		if !seen[k] {
			seen[k] = true
			a.quar = append(a.quar, r)
			n++
		}
	}
	return n, nil
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
func (a *Archive) AddState(_ context.Context, st State) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if old, ok := a.states[st.ConversationID]; !ok || st.Version >= old.Version {
		a.states[st.ConversationID] = st
	}
	return nil
}

// AddConversations queues conversation rows behind the message rows queued
// so far.
func (a *Archive) AddConversations(_ context.Context, rows ...ConversationRow) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.convs = append(a.convs, rows...)
	return nil
}

// AddChecks queues re-check schedule entries behind the rows queued so far.
func (a *Archive) AddChecks(_ context.Context, checks ...StatusCheck) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.checks = append(a.checks, checks...)
	return nil
}

// Flush writes everything queued. A failed flush keeps it all buffered for
// the next one.
func (a *Archive) Flush(ctx context.Context) error {
	return a.flush(ctx, false)
}

// flush writes everything queued. A background flush keeps its error in
// bgErr; a flush that reports to its caller, or succeeds, clears it.
func (a *Archive) flush(ctx context.Context, background bool) error {
	select {
	case a.flushing <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("flush to ClickHouse: rows kept for the next flush: %w", ctx.Err())
	}
	defer func() { <-a.flushing }()

	a.mu.Lock()
	msgs, bytes, quar, checks, convs, states := a.msgs, a.bytes, a.quar, a.checks, a.convs, a.states
	a.msgs, a.bytes, a.quar, a.checks, a.convs, a.states = nil, 0, nil, nil, nil, map[string]State{}
	a.mu.Unlock()
	if len(msgs) == 0 && len(quar) == 0 && len(checks) == 0 && len(convs) == 0 && len(states) == 0 {
		return nil
	}

	start := time.Now()
	err := a.insertMessages(ctx, msgs)
	if err == nil {
		err = a.insertQuarantine(ctx, quar)
	}
	if err == nil {
		err = a.insertChecks(ctx, checks)
	}
	if err == nil {
		err = a.insertConversations(ctx, convs)
	}
	if err == nil {
		err = a.insertStates(ctx, states)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		// Keep everything, in order, ahead of what was queued meanwhile.
		a.msgs = append(msgs, a.msgs...)
		a.bytes += bytes
		a.quar = append(quar, a.quar...)
		a.checks = append(checks, a.checks...)
		a.convs = append(convs, a.convs...)
		for id, st := range a.states {
			if old, ok := states[id]; !ok || st.Version >= old.Version {
				states[id] = st
			}
		}
		a.states = states
		a.stats.FailedWrites++
		a.metrics.failures.Inc()
		err = fmt.Errorf("flush to ClickHouse: rows kept for the next flush: %w", err)
		a.bgErr = nil
		if background {
			a.bgErr = err
		}
		return err
	}
	a.bgErr = nil
	elapsed := time.Since(start)
	a.stats.Flushes++
	a.stats.MessageRows += int64(len(msgs))
	a.stats.InsertTime += elapsed
	a.stats.Bytes += int64(bytes)
	a.metrics.duration.Observe(elapsed.Seconds())
	a.metrics.bytes.Add(float64(bytes))
	a.metrics.rows.WithLabelValues("messages").Add(float64(len(msgs)))
	a.metrics.rows.WithLabelValues("quarantine").Add(float64(len(quar)))
	a.metrics.rows.WithLabelValues("status_checks").Add(float64(len(checks)))
	a.metrics.rows.WithLabelValues("conversations").Add(float64(len(convs)))
	a.metrics.rows.WithLabelValues("sync_state").Add(float64(len(states)))
	return nil
}

func (r *MessageRow) size() int {
	return len(r.ConversationID) + len(r.MessageID) + len(r.Text) + len(r.Raw) + len(r.DetailRaw) + len(r.MediaURL) +
		len(r.Caption) + len(r.SenderName) + len(r.EnrichError) + 120
}

const messageColumns = "conversation_id, message_id, direction, type, status, text, media_url, caption, filename, " +
	"sender_name, sender_phone, sender_id, sender_type, sender_role, recipient_phone, reply_to, is_template, sent_at, sent_at_ns, " +
	"delivered_at, read_at, updated_at, enriched, enrich_error, raw, detail_raw, fetched_at, version"

func (a *Archive) insertMessages(ctx context.Context, rows []MessageRow) error {
	if len(rows) == 0 {
		return nil
	}
	b, err := a.s.conn.PrepareBatch(ctx, "INSERT INTO "+a.s.TableName("messages")+" ("+messageColumns+")")
	if err != nil {
		return fmt.Errorf("prepare messages insert: %w", err)
	}
	defer b.Abort()
	// Whole columns at once: appending row by row converts every value
	// through reflection, twice the CPU of clickhouse-client per row.
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
	}
	for i, col := range columns {
		if err := b.Column(i).Append(col); err != nil {
			return fmt.Errorf("messages column %d: %w", i, err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("insert %d messages: %w", len(rows), err)
	}
	return nil
}

func (a *Archive) insertQuarantine(ctx context.Context, rows []QuarantineRow) error {
	if len(rows) == 0 {
		return nil
	}
	b, err := a.s.conn.PrepareBatch(ctx, "INSERT INTO "+a.s.TableName("quarantine")+
		" (received_at, run_id, endpoint, conversation_id, message_id, error, raw, raw_hash)")
	if err != nil {
		return fmt.Errorf("prepare quarantine insert: %w", err)
	}
	defer b.Abort()
	for _, r := range rows {
		if err := b.Append(dt(r.ReceivedAt), r.RunID, r.Endpoint, r.ConversationID, r.MessageID, r.Error, r.Raw, r.RawHash); err != nil {
			return fmt.Errorf("quarantine row: %w", err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("insert %d quarantine rows: %w", len(rows), err)
	}
	return nil
}

const checkColumns = "conversation_id, message_id, sent_at, until, checked_at, next_check_at, checks, open, version"

func (a *Archive) insertChecks(ctx context.Context, checks []StatusCheck) error {
	if len(checks) == 0 {
		return nil
	}
	b, err := a.s.conn.PrepareBatch(ctx, "INSERT INTO "+a.s.TableName("status_checks")+" ("+checkColumns+")")
	if err != nil {
		return fmt.Errorf("prepare status check insert: %w", err)
	}
	defer b.Abort()
	for _, c := range checks {
		if err := b.Append(c.ConversationID, c.MessageID, dt(c.SentAt), dt(c.Until), dt(c.CheckedAt), dt(c.NextCheckAt), c.Checks,
			boolU8(c.Open), c.Version); err != nil {
			return fmt.Errorf("status check of %s: %w", c.MessageID, err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("insert %d status checks: %w", len(checks), err)
	}
	return nil
}

const conversationColumns = "conversation_id, inbox_id, inbox_name, contact_id, contact_name, contact_phone, " +
	"platform_type, stage_status, handled_by_id, handled_by_name, labels, last_message_at, created_at, resolved_at, raw, " +
	"listed_at, activity, synced_activity, version"

func (a *Archive) insertConversations(ctx context.Context, rows []ConversationRow) error {
	if len(rows) == 0 {
		return nil
	}
	b, err := a.s.conn.PrepareBatch(ctx, "INSERT INTO "+a.s.TableName("conversations")+" ("+conversationColumns+")")
	if err != nil {
		return fmt.Errorf("prepare conversation insert: %w", err)
	}
	defer b.Abort()
	for _, r := range rows {
		labels := r.Labels
		if labels == nil {
			labels = []string{}
		}
		if err := b.Append(r.ConversationID, r.InboxID, r.InboxName, r.ContactID, r.ContactName, r.ContactPhone,
			r.PlatformType, r.StageStatus, r.HandledByID, r.HandledByName, labels, dtp(r.LastMessageAt), dtp(r.CreatedAt),
			dtp(r.ResolvedAt), r.Raw, dt(r.ListedAt), r.Activity, r.SyncedActivity, r.Version); err != nil {
			return fmt.Errorf("conversation %s: %w", r.ConversationID, err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("insert %d conversations: %w", len(rows), err)
	}
	return nil
}

// Conversations returns every conversation's current row.
func (a *Archive) Conversations(ctx context.Context) (map[string]ConversationRow, error) {
	var out map[string]ConversationRow
	err := a.read(ctx, "query conversations", "SELECT "+conversationColumns+" FROM "+a.s.TableName("conversations")+" FINAL", nil,
		func() { out = map[string]ConversationRow{} }, func(rows driver.Rows) error {
			var (
				r                       ConversationRow
				last, created, resolved *time.Time
				listed                  time.Time
			)
			if err := rows.Scan(&r.ConversationID, &r.InboxID, &r.InboxName, &r.ContactID, &r.ContactName, &r.ContactPhone,
				&r.PlatformType, &r.StageStatus, &r.HandledByID, &r.HandledByName, &r.Labels, &last, &created, &resolved,
				&r.Raw, &listed, &r.Activity, &r.SyncedActivity, &r.Version); err != nil {
				return fmt.Errorf("scan conversation: %w", err)
			}
			r.LastMessageAt, r.CreatedAt, r.ResolvedAt, r.ListedAt = fromDTP(last), fromDTP(created), fromDTP(resolved), fromDT(listed)
			out[r.ConversationID] = r
			return nil
		})
	return out, err
}

const stateColumns = "conversation_id, gone, head_message_id, head_sent_at, head_sent_at_ns, gap_before, gap_stop, " +
	"backfill_complete, last_attempt_at, last_success_at, last_error, next_due_at, idle_runs, updated_at, version, purged_at"

func (a *Archive) insertStates(ctx context.Context, states map[string]State) error {
	if len(states) == 0 {
		return nil
	}
	b, err := a.s.conn.PrepareBatch(ctx, "INSERT INTO "+a.s.TableName("sync_state")+" ("+stateColumns+")")
	if err != nil {
		return fmt.Errorf("prepare state insert: %w", err)
	}
	defer b.Abort()
	for _, st := range states {
		before := make([]string, len(st.Gaps))
		stop := make([]string, len(st.Gaps))
		for i, g := range st.Gaps {
			before[i], stop[i] = g.Before, g.Stop
		}
		if err := b.Append(st.ConversationID, boolU8(st.Gone), st.HeadMessageID, dt(st.HeadSentAt),
			uint32(st.HeadSentAt.Nanosecond()), before, stop, boolU8(st.BackfillComplete), dt(st.LastAttemptAt),
			dt(st.LastSuccessAt), st.LastError, dt(st.NextDueAt), st.IdleRuns, dt(st.UpdatedAt), st.Version, dt(st.PurgedAt)); err != nil {
			return fmt.Errorf("state of %s: %w", st.ConversationID, err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("insert %d states: %w", len(states), err)
	}
	return nil
}

// SaveRun records a run's summary.
func (a *Archive) SaveRun(ctx context.Context, r RunRow) error {
	b, err := a.s.conn.PrepareBatch(ctx, "INSERT INTO "+a.s.TableName("sync_runs")+
		" (run_id, shard, started_at, finished_at, result, conversations, new_messages, enriched, rechecked, quarantined, requests, error)")
	if err != nil {
		return fmt.Errorf("prepare run insert: %w", err)
	}
	defer b.Abort()
	if err := b.Append(r.RunID, r.Shard, dt(r.StartedAt), dt(r.FinishedAt), r.Result, r.Conversations, r.NewMessages,
		r.Enriched, r.Rechecked, r.Quarantined, r.Requests, r.Error); err != nil {
		return fmt.Errorf("run row: %w", err)
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("insert run: %w", err)
	}
	return nil
}

// read runs a query and hands each row to scan. A pooled connection that
// turns out broken (closed by the server or the network while idle) is
// retried once on a fresh connection; reset clears what scan gathered.
func (a *Archive) read(ctx context.Context, what, query string, args []any, reset func(), scan func(driver.Rows) error) error {
	for attempt := 1; ; attempt++ {
		reset()
		err := a.readOnce(ctx, query, args, scan)
		if err == nil {
			return nil
		}
		if attempt == 1 && ctx.Err() == nil && brokenConn(err) {
			continue
		}
		return fmt.Errorf("%s: %w", what, err)
	}
}

func (a *Archive) readOnce(ctx context.Context, query string, args []any, scan func(driver.Rows) error) error {
	rows, err := a.s.conn.Query(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// brokenConn tells a connection that failed under the query from a query
// that failed: only the first is worth repeating.
func brokenConn(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		strings.Contains(err.Error(), "use of closed network connection")
}

// TrackedConversations returns the ids operators and analysts track
// through the tracked_conversations table.
func (a *Archive) TrackedConversations(ctx context.Context) ([]string, error) {
	var ids []string
	err := a.read(ctx, "query tracked conversations", "SELECT conversation_id FROM "+a.s.TableName("tracked_conversations")+
		" FINAL WHERE active = 1 ORDER BY conversation_id", nil, func() { ids = nil }, func(rows driver.Rows) error {
		var id string
		if err := rows.Scan(&id); err != nil {
			return fmt.Errorf("scan tracked conversation: %w", err)
		}
		ids = append(ids, id)
		return nil
	})
	return ids, err
}

// LoadStates returns every conversation's current sync state.
func (a *Archive) LoadStates(ctx context.Context) (map[string]State, error) {
	var out map[string]State
	err := a.read(ctx, "query sync state", "SELECT "+stateColumns+" FROM "+a.s.TableName("sync_state")+" FINAL", nil,
		func() { out = map[string]State{} }, func(rows driver.Rows) error {
			var (
				st                                     State
				gone, backfill                         uint8
				headNs                                 uint32
				before, stop                           []string
				head, attempt, success, due, updatedAt time.Time
				purged                                 time.Time
			)
			if err := rows.Scan(&st.ConversationID, &gone, &st.HeadMessageID, &head, &headNs, &before, &stop, &backfill,
				&attempt, &success, &st.LastError, &due, &st.IdleRuns, &updatedAt, &st.Version, &purged); err != nil {
				return fmt.Errorf("scan sync state: %w", err)
			}
			if len(before) != len(stop) {
				return fmt.Errorf("sync state of %s: %d gap cursors but %d gap stops", st.ConversationID, len(before), len(stop))
			}
			st.Gone, st.BackfillComplete = gone == 1, backfill == 1
			st.HeadSentAt = fromDT(head).Add(time.Duration(headNs))
			st.LastAttemptAt, st.LastSuccessAt, st.NextDueAt, st.UpdatedAt = fromDT(attempt), fromDT(success), fromDT(due), fromDT(updatedAt)
			st.PurgedAt = fromDT(purged)
			for i := range before {
				st.Gaps = append(st.Gaps, Gap{Before: before[i], Stop: stop[i]})
			}
			out[st.ConversationID] = st
			return nil
		})
	return out, err
}

// Archived returns, of ids, those archived for the conversation, with the
// status of their newest version.
func (a *Archive) Archived(ctx context.Context, conversationID string, ids []string) (map[string]ArchivedMessage, error) {
	out := map[string]ArchivedMessage{}
	if len(ids) == 0 {
		return out, nil
	}
	// message_index is sorted by (conversation_id, message_id), which IN
	// uses; messages is sorted by time and would be read a whole
	// conversation in every month. (has() scans the conversation: 85 ms
	// against 9.7 ms for IN in a 200,000-message conversation.)
	err := a.read(ctx, "query archived messages", "SELECT message_id, argMax(status, version), argMax(updated_at, version), "+
		"argMax(enriched, version) FROM "+a.s.TableName("message_index")+
		" WHERE conversation_id = ? AND message_id IN ? GROUP BY message_id", []any{conversationID, groupSet(ids)},
		func() { clear(out) }, func(rows driver.Rows) error {
			var (
				id       string
				m        ArchivedMessage
				updated  *time.Time
				enriched uint8
			)
			if err := rows.Scan(&id, &m.Status, &updated, &enriched); err != nil {
				return fmt.Errorf("scan archived message: %w", err)
			}
			m.UpdatedAt, m.Enriched = fromDTP(updated), enriched == 1
			out[id] = m
			return nil
		})
	return out, err
}

func groupSet(ids []string) clickhouse.GroupSet {
	set := make([]any, len(ids))
	for i, id := range ids {
		set[i] = id
	}
	return clickhouse.GroupSet{Value: set}
}

// CurrentMessages returns the newest version of the archived messages of a
// conversation among ids.
func (a *Archive) CurrentMessages(ctx context.Context, conversationID string, ids []string) ([]MessageRow, error) {
	var out []MessageRow
	if len(ids) == 0 {
		return out, nil
	}
	// messages is sorted by (sent_at, conversation_id, message_id): the
	// index gives the send times, and the sorting key finds the rows.
	err := a.read(ctx, "query archived messages", "SELECT "+messageColumns+" FROM "+a.s.TableName("messages")+
		" WHERE sent_at IN (SELECT sent_at FROM "+a.s.TableName("message_index")+" WHERE conversation_id = ? AND message_id IN ?)"+
		" AND conversation_id = ? AND message_id IN ? ORDER BY version DESC LIMIT 1 BY message_id",
		[]any{conversationID, groupSet(ids), conversationID, groupSet(ids)}, func() { out = nil }, func(rows driver.Rows) error {
			r, err := scanMessage(rows)
			if err != nil {
				return err
			}
			out = append(out, r)
			return nil
		})
	return out, err
}

// DueChecks returns up to limit open schedule entries due at now, the most
// overdue first. Only entries whose until has not passed are read: the
// partitions by month of until bound the query to the re-check window.
func (a *Archive) DueChecks(ctx context.Context, now time.Time, limit int) ([]StatusCheck, error) {
	var out []StatusCheck
	q := "SELECT conversation_id, message_id, any(sent_at), max(until), argMax(checked_at, version), " +
		"argMax(next_check_at, version) AS next, argMax(checks, version), argMax(open, version) AS o, max(version) FROM " +
		a.s.TableName("status_checks") + " WHERE until >= ? GROUP BY conversation_id, message_id " +
		"HAVING o = 1 AND next <= ? ORDER BY next LIMIT ?"
	err := a.read(ctx, "query due status checks", q, []any{dt(now), dt(now), limit}, func() { out = nil },
		func(rows driver.Rows) error {
			var (
				c                          StatusCheck
				sent, until, checked, next time.Time
				open                       uint8
			)
			if err := rows.Scan(&c.ConversationID, &c.MessageID, &sent, &until, &checked, &next, &c.Checks, &open,
				&c.Version); err != nil {
				return fmt.Errorf("scan status check: %w", err)
			}
			c.SentAt, c.Until, c.CheckedAt, c.NextCheckAt, c.Open = fromDT(sent), fromDT(until), fromDT(checked), fromDT(next), open == 1
			out = append(out, c)
			return nil
		})
	return out, err
}

type scanner interface{ Scan(dest ...any) error }

func scanMessage(rows scanner) (MessageRow, error) {
	var (
		r                          MessageRow
		tmpl, enriched             uint8
		sent, fetched              time.Time
		sentNs                     uint32
		delivered, read, updatedAt *time.Time
	)
	if err := rows.Scan(&r.ConversationID, &r.MessageID, &r.Direction, &r.Type, &r.Status, &r.Text, &r.MediaURL,
		&r.Caption, &r.Filename, &r.SenderName, &r.SenderPhone, &r.SenderID, &r.SenderType, &r.SenderRole, &r.RecipientPhone,
		&r.ReplyTo, &tmpl, &sent, &sentNs, &delivered, &read, &updatedAt, &enriched, &r.EnrichError, &r.Raw,
		&r.DetailRaw, &fetched, &r.Version); err != nil {
		return MessageRow{}, fmt.Errorf("scan message: %w", err)
	}
	r.IsTemplate, r.Enriched = tmpl == 1, enriched == 1
	r.SentAt = fromDT(sent).Add(time.Duration(sentNs))
	r.FetchedAt = fromDT(fetched)
	r.DeliveredAt, r.ReadAt, r.UpdatedAt = fromDTP(delivered), fromDTP(read), fromDTP(updatedAt)
	return r, nil
}

// Messages streams the current version of every archived message in
// (conversation, message) order, for verification against a source.
func (a *Archive) Messages(ctx context.Context, fn func(MessageRow) error) error {
	rows, err := a.s.conn.Query(ctx, "SELECT "+messageColumns+" FROM "+a.s.TableName("messages")+
		" FINAL ORDER BY conversation_id, message_id")
	if err != nil {
		return fmt.Errorf("query messages: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanMessage(rows)
		if err != nil {
			return err
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return rows.Err()
}

// ConversationStatus is one line of the status report.
type ConversationStatus struct {
	State
	Archived     uint64
	NewestSentAt time.Time
}

// Status reports every conversation with a sync state, in id order.
func (a *Archive) Status(ctx context.Context) ([]ConversationStatus, error) {
	states, err := a.LoadStates(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := a.s.conn.Query(ctx, "SELECT conversation_id, uniqExact(message_id), max(sent_at) FROM "+
		a.s.TableName("message_index")+" GROUP BY conversation_id")
	if err != nil {
		return nil, fmt.Errorf("query archive counts: %w", err)
	}
	defer rows.Close()
	counts := map[string]ConversationStatus{}
	for rows.Next() {
		var (
			id     string
			n      uint64
			newest time.Time
		)
		if err := rows.Scan(&id, &n, &newest); err != nil {
			return nil, fmt.Errorf("scan archive counts: %w", err)
		}
		counts[id] = ConversationStatus{Archived: n, NewestSentAt: fromDT(newest)}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]ConversationStatus, 0, len(states))
	for id, st := range states {
		c := counts[id]
		c.State = st
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ConversationID < out[j].ConversationID })
	return out, nil
}

// Store is the store the archive writes to.
func (a *Archive) Store() *Store { return a.s }

// epoch stands for "never": DateTime cannot hold Go's zero time.
var epoch = time.Unix(0, 0).UTC()

func dt(t time.Time) time.Time {
	if t.Before(epoch) {
		return epoch
	}
	return t.UTC()
}

func dtp(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := dt(*t)
	return &v
}

func fromDT(t time.Time) time.Time {
	if !t.After(epoch) {
		return time.Time{}
	}
	return t.UTC()
}

func fromDTP(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := t.UTC()
	return &v
}

func boolU8(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// RequestsSince is how many API requests the runs of a shard ("" when not
// sharded) recorded in sync_runs made since t: what earlier processes of
// that shard spent of today's API budget. Runs killed before their summary
// was written are not counted.
func (a *Archive) RequestsSince(ctx context.Context, t time.Time, shard string) (int, error) {
	var n uint64
	if err := a.s.conn.QueryRow(ctx, "SELECT sum(requests) FROM "+a.s.TableName("sync_runs")+
		" WHERE started_at >= ? AND shard = ?", dt(t), shard).Scan(&n); err != nil {
		return 0, fmt.Errorf("query today's requests: %w", err)
	}
	return int(n), nil
}
