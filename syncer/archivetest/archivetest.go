// Package archivetest gives the syncer's tests an archive to run against,
// and the contract every archive keeps (Contract).
//
// Tests of the engine and the purge take an Archive from Open: the archive
// in memory (syncer/memarchive) by default, so that every rule test runs
// without ClickHouse in seconds; the ClickHouse archive when the
// integration run sets CEKAT_ARCHIVER_TEST_CLICKHOUSE_ADDR. Contract holds
// both to the same answers, so a rule tested in memory holds for ClickHouse.
package archivetest

import (
	"context"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/sink/sinktest"
	"github.com/cekat-archiver/cekat-archiver/sink/storetest"
	"github.com/cekat-archiver/cekat-archiver/syncer"
	"github.com/cekat-archiver/cekat-archiver/syncer/memarchive"
	"github.com/cekat-archiver/cekat-archiver/syncer/purge"
)

// Archive is every interface of the archive that the syncer's packages
// consume, with what their tests read back and set up.
type Archive interface {
	syncer.Archive
	purge.EraseArchive
	AuditRows(ctx context.Context, conversationID string) ([]sink.AuditRow, error)

	// Track adds conversation ids to the tracked table.
	Track(ids ...string)
	// Messages returns the newest version of every stored message, in
	// (conversation, message) order.
	Messages() []sink.MessageRow
	// Quarantine returns the stored quarantine records, by message id.
	Quarantine() []sink.QuarantineRow
	// Runs returns the stored run rows.
	Runs() []sink.RunRow
	// Checks returns the stored schedule entry of each message, by
	// "conversation/message".
	Checks() map[string]sink.StatusCheck
	// SetFailWrites makes writes fail until called with nil.
	SetFailWrites(err error)
}

// An Opener opens an empty archive for a test; it is closed when the test
// ends.
type Opener func(t testing.TB) Archive

// Open is the archive of the run: ClickHouse when the test server is set
// (sinktest.EnvAddr), else the archive in memory.
func Open(t testing.TB) Archive {
	t.Helper()
	return OpenShared(t, 1, defaultOptions)[0]
}

// OpenShared opens n archives on one store, as n processes would share a
// ClickHouse database: on ClickHouse when the test server is set, each with
// its own write buffer and spool (opts); else one archive in memory n
// times.
func OpenShared(t testing.TB, n int, opts sink.ArchiveOptions) []Archive {
	t.Helper()
	out := make([]Archive, n)
	if strings.TrimSpace(os.Getenv(sinktest.EnvAddr)) == "" {
		m := Memory(t)
		for i := range out {
			out[i] = m
		}
		return out
	}
	db := sinktest.DatabaseName(t)
	for i := range out {
		out[i], _ = OpenClickHouse(t, sinktest.Addr(t), db, opts)
	}
	return out
}

var defaultOptions = sink.ArchiveOptions{BatchRows: 500, BatchInterval: time.Second}

// Memory opens an archive in memory.
func Memory(testing.TB) Archive { return memarchive.New() }

// ClickHouse opens the ClickHouse archive on a fresh database of the test
// server, through a proxy that SetFailWrites cuts. It skips the test when
// there is no test server.
func ClickHouse(t testing.TB) Archive {
	t.Helper()
	a, _ := OpenClickHouse(t, sinktest.Addr(t), sinktest.DatabaseName(t), defaultOptions)
	return a
}

// ClickHouseArchive is the ClickHouse archive with the read-backs of
// Archive.
type ClickHouseArchive struct {
	*sink.Archive
	t     testing.TB
	proxy *sinktest.Proxy
	store *sink.Store
}

// Store is the store the archive writes through, for tests that read
// ClickHouse's own tables (mutations, webhook events).
func (a *ClickHouseArchive) Store() *sink.Store { return a.store }

// OpenClickHouse migrates database db through addr and opens an archive on
// it through a proxy; both close when the test ends.
func OpenClickHouse(t testing.TB, addr, db string, opts sink.ArchiveOptions) (*ClickHouseArchive, *sink.Store) {
	t.Helper()
	ctx := context.Background()
	proxy := sinktest.NewProxy(t, addr)
	store := storetest.Migrated(t, sink.Options{Addr: []string{proxy.Addr()}, Database: db})
	archive, err := sink.OpenArchive(ctx, store, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { archive.Close(context.Background()) })
	return &ClickHouseArchive{Archive: archive, t: t, proxy: proxy, store: store}, store
}

// SetFailWrites cuts ClickHouse off (every connection closed, new ones
// refused) until called with nil. Reads fail meanwhile too.
func (a *ClickHouseArchive) SetFailWrites(err error) {
	if err != nil {
		a.proxy.Cut()
		return
	}
	a.proxy.Restore()
}

// Track implements Archive.
func (a *ClickHouseArchive) Track(ids ...string) {
	a.t.Helper()
	if err := a.Store().TrackConversations(context.Background(), "test", ids...); err != nil {
		a.t.Fatal(err)
	}
}

// Messages implements Archive.
func (a *ClickHouseArchive) Messages() []sink.MessageRow {
	a.t.Helper()
	var out []sink.MessageRow
	if err := a.Archive.Messages(context.Background(), func(r sink.MessageRow) error {
		out = append(out, r)
		return nil
	}); err != nil {
		a.t.Fatal(err)
	}
	return out
}

// query runs q and hands each row to scan, failing the test on an error.
func (a *ClickHouseArchive) query(q string, scan func(rows interface{ Scan(...any) error }) error) {
	a.t.Helper()
	rows, err := a.Store().Conn().Query(context.Background(), q)
	if err != nil {
		a.t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			a.t.Fatal(err)
		}
	}
	if err := rows.Err(); err != nil {
		a.t.Fatal(err)
	}
}

func utc(t time.Time) time.Time {
	if !t.After(time.Unix(0, 0)) {
		return time.Time{}
	}
	return t.UTC()
}

// Quarantine implements Archive.
func (a *ClickHouseArchive) Quarantine() []sink.QuarantineRow {
	a.t.Helper()
	var out []sink.QuarantineRow
	a.query("SELECT received_at, run_id, endpoint, conversation_id, message_id, error, raw FROM "+
		a.Store().TableName("quarantine")+" FINAL ORDER BY message_id, conversation_id, endpoint, raw",
		func(rows interface{ Scan(...any) error }) error {
			var q sink.QuarantineRow
			if err := rows.Scan(&q.ReceivedAt, &q.RunID, &q.Endpoint, &q.ConversationID, &q.MessageID, &q.Error, &q.Raw); err != nil {
				return err
			}
			q.ReceivedAt = utc(q.ReceivedAt)
			out = append(out, q)
			return nil
		})
	return out
}

// Runs implements Archive.
func (a *ClickHouseArchive) Runs() []sink.RunRow {
	a.t.Helper()
	var out []sink.RunRow
	a.query("SELECT run_id, kind, shard, started_at, finished_at, result, conversations, new_messages, enriched, rechecked, "+
		"quarantined, requests, error, version FROM "+a.Store().TableName("sync_runs")+" FINAL ORDER BY started_at, run_id",
		func(rows interface{ Scan(...any) error }) error {
			var r sink.RunRow
			if err := rows.Scan(&r.RunID, &r.Kind, &r.Shard, &r.StartedAt, &r.FinishedAt, &r.Result, &r.Conversations, &r.NewMessages,
				&r.Enriched, &r.Rechecked, &r.Quarantined, &r.Requests, &r.Error, &r.Version); err != nil {
				return err
			}
			r.StartedAt, r.FinishedAt = utc(r.StartedAt), utc(r.FinishedAt)
			out = append(out, r)
			return nil
		})
	return out
}

// Checks implements Archive: the newest version of each entry, with the
// latest until of any version (as DueChecks reads them).
func (a *ClickHouseArchive) Checks() map[string]sink.StatusCheck {
	a.t.Helper()
	out := map[string]sink.StatusCheck{}
	a.query("SELECT conversation_id, message_id, any(sent_at), max(until), argMax(checked_at, version), "+
		"argMax(next_check_at, version), argMax(checks, version), argMax(open, version), max(version) FROM "+
		a.Store().TableName("status_checks")+" GROUP BY conversation_id, message_id",
		func(rows interface{ Scan(...any) error }) error {
			var (
				c    sink.StatusCheck
				open uint8
			)
			if err := rows.Scan(&c.ConversationID, &c.MessageID, &c.SentAt, &c.Until, &c.CheckedAt, &c.NextCheckAt, &c.Checks,
				&open, &c.Version); err != nil {
				return err
			}
			c.SentAt, c.Until, c.CheckedAt, c.NextCheckAt, c.Open = utc(c.SentAt), utc(c.Until), utc(c.CheckedAt), utc(c.NextCheckAt), open == 1
			out[c.ConversationID+"/"+c.MessageID] = c
			return nil
		})
	return out
}

// Counting is an archive that counts the reads the engine's lookup rules
// are about.
type Counting struct {
	Archive
	lookups, convLookups, rowReads atomic.Int64
}

// Archived counts a lookup.
func (c *Counting) Archived(ctx context.Context, conv string, ids []string) (map[string]sink.ArchivedMessage, error) {
	c.lookups.Add(1)
	return c.Archive.Archived(ctx, conv, ids)
}

// ConversationsArchived counts a lookup of conversations.
func (c *Counting) ConversationsArchived(ctx context.Context, ids []string) (map[string]bool, error) {
	c.convLookups.Add(1)
	return c.Archive.ConversationsArchived(ctx, ids)
}

// CurrentMessages counts the whole rows asked for.
func (c *Counting) CurrentMessages(ctx context.Context, conv string, ids []string) ([]sink.MessageRow, error) {
	c.rowReads.Add(int64(len(ids)))
	return c.Archive.CurrentMessages(ctx, conv, ids)
}

// Lookups returns how many times Archived was called.
func (c *Counting) Lookups() int { return int(c.lookups.Load()) }

// ConversationLookups returns how many times ConversationsArchived was called.
func (c *Counting) ConversationLookups() int { return int(c.convLookups.Load()) }

// RowReads returns how many whole rows CurrentMessages was asked for.
func (c *Counting) RowReads() int { return int(c.rowReads.Load()) }
