package sink

import (
	"context"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/cekat-archiver/cekat-archiver/sink/sinktest"
)

func TestMigrateStopsAtFailingMigration(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := Open(ctx, Options{Addr: []string{sinktest.Addr(t)}, Database: sinktest.FreshDatabase(t)})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer st.Close()

	head := "-- +goose Up\n-- +goose NO TRANSACTION\n"
	fsys := fstest.MapFS{
		"00001_a.sql": {Data: []byte(head + "CREATE TABLE IF NOT EXISTS a (x UInt8) ENGINE = MergeTree ORDER BY x;\n")},
		"00002_b.sql": {Data: []byte(head + "CREATE TABLE b (x NoSuchType) ENGINE = MergeTree ORDER BY x;\n")},
		"00003_c.sql": {Data: []byte(head + "CREATE TABLE IF NOT EXISTS c (x UInt8) ENGINE = MergeTree ORDER BY x;\n")},
	}
	applied, err := st.migrate(ctx, fsys, migrateRun{})
	if err == nil {
		t.Fatal("migrate succeeded, want the error of 00002_b.sql")
	}
	if !strings.Contains(err.Error(), "00002_b.sql") {
		t.Errorf("error %q does not name the failing file", err)
	}
	if len(applied) != 1 || applied[0] != "00001_a.sql" {
		t.Errorf("applied %v, want [00001_a.sql]", applied)
	}
	t.Logf("error: %v", err)

	// Fixing the file lets the next run go on from where it stopped.
	fsys["00002_b.sql"] = &fstest.MapFile{Data: []byte(head + "CREATE TABLE IF NOT EXISTS b (x UInt8) ENGINE = MergeTree ORDER BY x;\n")}
	applied, err = st.migrate(ctx, fsys, migrateRun{})
	if err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	if strings.Join(applied, ",") != "00002_b.sql,00003_c.sql" {
		t.Errorf("second migrate applied %v, want [00002_b.sql 00003_c.sql]", applied)
	}
}

// An archive made before status_checks existed gets its moving statuses put
// on the re-check schedule by the migration that seeds it.
// migrateBefore applies the migrations numbered below version (e.g. "00011"),
// as an archive made before them has.
func migrateBefore(ctx context.Context, t *testing.T, st *Store, version string) {
	t.Helper()
	older := fstest.MapFS{}
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() < version {
			data, err := fs.ReadFile(migrationFiles, "migrations/"+e.Name())
			if err != nil {
				t.Fatal(err)
			}
			older[e.Name()] = &fstest.MapFile{Data: data}
		}
	}
	if _, err := st.migrate(ctx, older, migrateRun{}); err != nil {
		t.Fatal(err)
	}
}

// insertBefore00011 writes rows into the messages table of an archive made
// before 00011: the columns of that time, without sender_role.
func insertBefore00011(ctx context.Context, t *testing.T, st *Store, rows ...MessageRow) {
	t.Helper()
	// The columns of the schema before 00011 (no sender_role, no status_source).
	cols := strings.Replace(strings.Replace(messageColumns, " sender_role,", "", 1), ", status_source", "", 1)
	b, err := st.conn.PrepareBatch(ctx, "INSERT INTO "+st.TableName("messages")+" ("+cols+")")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if err := b.Append(r.ConversationID, r.MessageID, r.Direction, r.Type, r.Status, r.Text, r.MediaURL, r.Caption,
			r.Filename, r.SenderName, r.SenderPhone, r.SenderID, r.SenderType, r.RecipientPhone, r.ReplyTo, boolU8(r.IsTemplate),
			dt(r.SentAt), uint32(r.SentAt.Nanosecond()), dtp(r.DeliveredAt), dtp(r.ReadAt), dtp(r.UpdatedAt), boolU8(r.Enriched),
			r.EnrichError, r.Raw, r.DetailRaw, dt(r.FetchedAt), r.Version); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
}

func TestSeedStatusChecksFromAnOlderArchive(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := Open(ctx, Options{Addr: []string{sinktest.Addr(t)}, Database: sinktest.FreshDatabase(t)})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer st.Close()
	older := fstest.MapFS{}
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() < "00007" {
			data, err := fs.ReadFile(migrationFiles, "migrations/"+e.Name())
			if err != nil {
				t.Fatal(err)
			}
			older[e.Name()] = &fstest.MapFile{Data: data}
		}
	}
	if _, err := st.migrate(ctx, older, migrateRun{}); err != nil {
		t.Fatal(err)
	}
	a, err := OpenArchive(context.Background(), st, ArchiveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	now := time.Now().UTC()
	row := func(id, status string, sent time.Time, version uint64) MessageRow {
		return MessageRow{ConversationID: "c", MessageID: id, Status: status, SentAt: sent, Enriched: true, FetchedAt: sent, Version: version}
	}
	insertBefore00011(ctx, t, st,
		row("moving", "delivered", now.Add(-time.Hour), 1),
		row("read-now", "delivered", now.Add(-time.Hour), 1), row("read-now", "read", now.Add(-time.Hour), 2),
		row("old", "delivered", now.Add(-30*24*time.Hour), 1),
	)
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	due, err := a.DueChecks(ctx, now.Add(time.Minute), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(due) != 1 || due[0].MessageID != "moving" || !due[0].Open {
		t.Errorf("due after the seed: %+v; want only the moving status", due)
	}
}

// An archive made before messages was partitioned is copied into the
// partitioned table with every version, gets sender roles by the same rule
// as new rows, an index for the sync engine's lookups and a rollup; the copy
// may run twice without doubling anything.
func TestPartitionMessagesOfAnOlderArchive(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := Open(ctx, Options{Addr: []string{sinktest.Addr(t)}, Database: sinktest.FreshDatabase(t)})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer st.Close()
	migrateBefore(ctx, t, st, "00011")

	// Every combination of direction and sender type the rule tells apart,
	// over three months, each message in two versions (the second read).
	directions := []string{"inbound", "outbound", ""}
	senderTypes := []string{"", "user", "USER", "customer", "contact", "agent", "Agent", "bot", "ai", "system", "page", "Çustomer"}
	start := time.Date(2025, 1, 31, 23, 59, 59, 123456789, time.UTC)
	var rows []MessageRow
	want := map[string]string{} // message id: its role
	n := 0
	for _, dir := range directions {
		for _, st := range senderTypes {
			id := fmt.Sprintf("m%02d", n)
			sent := start.Add(time.Duration(n) * 7 * 24 * time.Hour / 3)
			delivered := sent.Add(5 * time.Second).Truncate(time.Second)
			read := sent.Add(time.Minute).Truncate(time.Second)
			v1 := MessageRow{ConversationID: fmt.Sprintf("c%d", n%3), MessageID: id, Direction: dir, SenderType: st,
				Type: "text", Status: "delivered", SentAt: sent, DeliveredAt: &delivered, Enriched: true, FetchedAt: sent, Version: 1}
			v2 := v1
			v2.Status, v2.ReadAt, v2.Version = "read", &read, 2
			rows = append(rows, v1, v2)
			want[id] = SenderRole(dir, st)
			n++
		}
	}
	insertBefore00011(ctx, t, st, rows...)

	// Up to the copy; then the copy once more, as after a crash before its
	// version was recorded; then the rest.
	migrateBefore(ctx, t, st, "00013")
	copySQL, err := fs.ReadFile(migrationFiles, "migrations/00012_copy_messages_to_partitioned.sql")
	if err != nil {
		t.Fatal(err)
	}
	stmt := strings.TrimSuffix(strings.TrimSpace(string(copySQL[strings.Index(string(copySQL), "INSERT"):])), ";")
	stmt = strings.NewReplacer("messages_partitioned", st.TableName("messages_partitioned"), "FROM messages", "FROM "+st.TableName("messages")).Replace(stmt)
	if err := st.conn.Exec(ctx, stmt); err != nil {
		t.Fatalf("copy again: %v", err)
	}
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}

	count := func(q string) uint64 {
		t.Helper()
		var n uint64
		if err := st.conn.QueryRow(ctx, q).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	// A server may have merged the two versions of a message in either table by now: what
	// must hold is every message at its newest version.
	if got := count("SELECT countIf(v = 2) FROM (SELECT message_id, max(version) AS v FROM " + st.TableName("messages_unpartitioned") + " GROUP BY message_id)"); got != uint64(n) {
		t.Errorf("messages_unpartitioned holds %d messages at their second version, want the %d it had", got, n)
	}
	if got := count("SELECT count() FROM " + st.TableName("messages_current")); got != uint64(n) {
		t.Errorf("messages_current holds %d rows, want one per message: %d", got, n)
	}
	if got := count("SELECT uniqExact(partition) FROM system.parts WHERE active AND database = '" + st.Database() + "' AND table = 'messages'"); got < 3 {
		t.Errorf("messages has %d partitions, want one per month of the send times (at least 3)", got)
	}

	rs, err := st.conn.Query(ctx, "SELECT message_id, sender_role, status, version FROM "+st.TableName("messages_current"))
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	for rs.Next() {
		var (
			id, role, status string
			version          uint64
		)
		if err := rs.Scan(&id, &role, &status, &version); err != nil {
			t.Fatal(err)
		}
		if role != want[id] || status != "read" || version != 2 {
			t.Errorf("%s: role %s, status %s, version %d; want role %s (the Go rule), read, 2", id, role, status, version, want[id])
		}
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}

	// The sync engine's lookups find the copied messages through the index.
	a, err := OpenArchive(context.Background(), st, ArchiveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	got, err := a.Archived(ctx, "c0", []string{"m00", "m03", "m01", "nope"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["m00"].Status != "read" || got["m03"].Status != "read" {
		t.Errorf("Archived = %+v; want m00 and m03 read", got)
	}
	current, err := a.CurrentMessages(ctx, "c1", []string{"m01", "m04", "m00"})
	if err != nil {
		t.Fatal(err)
	}
	if len(current) != 2 || current[0].Version != 2 || current[1].Version != 2 || current[0].SenderRole != want[current[0].MessageID] {
		t.Errorf("CurrentMessages = %+v; want the second versions of m01 and m04", current)
	}
	// And the rollup counts each message once, however many versions.
	if got := count("SELECT uniqExactMerge(messages_state) FROM " + st.TableName("message_rollup")); got != uint64(n) {
		t.Errorf("message_rollup counts %d messages, want %d", got, n)
	}
	if got := count("SELECT length(groupUniqArrayIfMerge(delivery_seconds_state)) FROM " + st.TableName("message_rollup")); got != uint64(n) {
		t.Errorf("message_rollup holds %d delivery times, want one per message: %d", got, n)
	}
}
