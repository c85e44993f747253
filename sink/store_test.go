package sink_test

import (
	"context"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap/zaptest"

	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/sink/sinktest"
	"github.com/cekat-archiver/cekat-archiver/sink/storetest"
)

var allMigrations = []string{
	"00001_create_messages.sql",
	"00002_create_messages_current.sql",
	"00003_create_sync_state.sql",
	"00004_create_quarantine.sql",
	"00005_create_tracked_conversations.sql",
	"00006_create_sync_runs.sql",
	"00007_create_status_checks.sql",
	"00008_seed_status_checks.sql",
	"00009_add_sync_state_purged_at.sql",
	"00010_create_purge_audit.sql",
	"00011_create_messages_partitioned.sql",
	"00012_copy_messages_to_partitioned.sql",
	"00013_swap_messages.sql",
	"00014_create_message_index.sql",
	"00015_create_message_index_mv.sql",
	"00016_fill_message_index.sql",
	"00017_drop_messages_current.sql",
	"00018_create_messages_current.sql",
	"00019_comment_sync_state.sql",
	"00020_comment_quarantine.sql",
	"00021_comment_tracked_conversations.sql",
	"00022_comment_sync_runs.sql",
	"00023_comment_status_checks.sql",
	"00024_comment_purge_audit.sql",
	"00025_create_message_rollup.sql",
	"00026_create_message_rollup_mv.sql",
	"00027_fill_message_rollup.sql",
	"00028_create_conversation_summary.sql",
	"00029_create_message_turns.sql",
	"00030_create_conversations.sql",
	"00031_create_webhook_events.sql",
	"00032_comment_conversations_and_webhook_events.sql",
	"00033_add_sync_runs_shard.sql",
	"00034_comment_sync_runs_shard.sql",
	"00040_create_sync_runs_versioned.sql",
	"00041_copy_sync_runs_to_versioned.sql",
	"00042_swap_sync_runs.sql",
	"00043_drop_sync_runs_unversioned.sql",
	"00044_create_archiver_leases.sql",
	"00045_create_archive_identity.sql",
	"00050_add_status_checks_kind.sql",
	"00051_comment_status_checks_kind.sql",
	"00052_add_messages_status_source.sql",
	"00053_comment_messages_status_source.sql",
	"00054_drop_messages_current.sql",
	"00055_create_messages_current.sql",
	"00060_drop_empty_messages_unpartitioned.go",
	"00061_add_message_rollup_read_after_delivery.sql",
	"00062_comment_message_rollup_read_after_delivery.sql",
	"00063_drop_message_rollup_mv.sql",
	"00064_create_message_rollup_mv.sql",
	"00065_fill_message_rollup_read_after_delivery.sql",
	"current/00066_tune_messages_columns.sql",
	"current/00067_create_message_turns_with_window_functions.sql",
	"current/00068_comment_conversation_summary.sql",
	"current/00080_merge_quiet_months_whole.sql",
	"current/00081_create_messages_current_per_partition.sql",
	"00082_create_sweep_state.sql",
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// openStore opens a Store on the test server for database db.
func openStore(t *testing.T, db string) *sink.Store {
	t.Helper()
	st, err := sink.Open(testContext(t), sink.Options{
		Addr:     []string{sinktest.Addr(t)},
		Database: db,
		Logger:   zaptest.NewLogger(t),
	})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return st
}

// migratedStore opens a Store on a fresh database and migrates it.
func migratedStore(t *testing.T) *sink.Store {
	t.Helper()
	return storetest.Migrated(t, sink.Options{Database: sinktest.FreshDatabase(t), Logger: zaptest.NewLogger(t)})
}

// proxiedStore migrates a fresh database, then opens a Store on it through
// a proxy the test can cut or stall; db is for a direct look.
func proxiedStore(t *testing.T) (st *sink.Store, proxy *sinktest.Proxy, db string) {
	t.Helper()
	db = migratedStore(t).Database()
	proxy = sinktest.NewProxy(t, sinktest.Addr(t))
	st, err := sink.Open(testContext(t), sink.Options{Addr: []string{proxy.Addr()}, Database: db, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		proxy.Close() // first: it unblocks whatever still waits on stalled connections
		_ = st.Close()
	})
	return st, proxy, db
}

// wantSchema is the schema the migrations must produce, as system.columns reports it (on 18.16
// and on current releases alike).
var wantSchema = []sink.Table{
	{Name: "archive_identity", Engine: "ReplacingMergeTree", Columns: []sink.Column{
		{Name: "archive_id", Type: `String`},
		{Name: "created_at", Type: `DateTime('UTC')`},
		{Name: "retired", Type: `UInt8`},
		{Name: "version", Type: `UInt64`},
	}},
	{Name: "archiver_leases", Engine: "ReplacingMergeTree", Columns: []sink.Column{
		{Name: "lease", Type: "String"},
		{Name: "holder", Type: "String"},
		{Name: "host", Type: "String"},
		{Name: "pid", Type: "UInt32"},
		{Name: "since", Type: "DateTime('UTC')"},
		{Name: "heartbeat", Type: "DateTime('UTC')"},
		{Name: "expires", Type: "DateTime('UTC')"},
		{Name: "released", Type: "UInt8"},
		{Name: "version", Type: "UInt64"},
	}},
	{Name: "conversation_summary", Engine: "View", Columns: []sink.Column{
		{Name: "conversation_id", Type: `String`},
		{Name: "messages", Type: `UInt64`},
		{Name: "inbound", Type: `UInt64`},
		{Name: "outbound", Type: `UInt64`},
		{Name: "customer_messages", Type: `UInt64`},
		{Name: "agent_messages", Type: `UInt64`},
		{Name: "bot_messages", Type: `UInt64`},
		{Name: "system_messages", Type: `UInt64`},
		{Name: "unknown_messages", Type: `UInt64`},
		{Name: "first_sent_at", Type: `DateTime('UTC')`},
		{Name: "last_sent_at", Type: `DateTime('UTC')`},
		{Name: "first_message_id", Type: `String`},
		{Name: "last_message_id", Type: `String`},
		{Name: "first_message_text", Type: `String`},
		{Name: "last_message_text", Type: `String`},
		{Name: "agents", Type: `Array(String)`},
		{Name: "customer_name", Type: `String`},
	}},
	{Name: "conversations", Engine: "ReplacingMergeTree", Columns: []sink.Column{
		{Name: "conversation_id", Type: "String"},
		{Name: "inbox_id", Type: "String"},
		{Name: "inbox_name", Type: "String"},
		{Name: "contact_id", Type: "String"},
		{Name: "contact_name", Type: "String"},
		{Name: "contact_phone", Type: "String"},
		{Name: "platform_type", Type: "String"},
		{Name: "stage_status", Type: "String"},
		{Name: "handled_by_id", Type: "String"},
		{Name: "handled_by_name", Type: "String"},
		{Name: "labels", Type: "Array(String)"},
		{Name: "last_message_at", Type: "Nullable(DateTime('UTC'))"},
		{Name: "created_at", Type: "Nullable(DateTime('UTC'))"},
		{Name: "resolved_at", Type: "Nullable(DateTime('UTC'))"},
		{Name: "raw", Type: "String"},
		{Name: "listed_at", Type: "DateTime('UTC')"},
		{Name: "activity", Type: "String"},
		{Name: "synced_activity", Type: "String"},
		{Name: "version", Type: "UInt64"},
	}},
	{Name: "message_index", Engine: "ReplacingMergeTree", Columns: []sink.Column{
		{Name: "conversation_id", Type: `String`},
		{Name: "message_id", Type: `String`},
		{Name: "sent_at", Type: `DateTime('UTC')`},
		{Name: "status", Type: `String`},
		{Name: "updated_at", Type: `Nullable(DateTime('UTC'))`},
		{Name: "enriched", Type: `UInt8`},
		{Name: "version", Type: `UInt64`},
	}},
	{Name: "message_index_mv", Engine: "MaterializedView", Columns: []sink.Column{
		{Name: "conversation_id", Type: `String`},
		{Name: "message_id", Type: `String`},
		{Name: "sent_at", Type: `DateTime('UTC')`},
		{Name: "status", Type: `String`},
		{Name: "updated_at", Type: `Nullable(DateTime('UTC'))`},
		{Name: "enriched", Type: `UInt8`},
		{Name: "version", Type: `UInt64`},
	}},
	{Name: "message_rollup", Engine: "AggregatingMergeTree", Columns: []sink.Column{
		{Name: "bucket", Type: `DateTime('UTC')`},
		{Name: "direction", Type: `String`},
		{Name: "type", Type: `String`},
		{Name: "sender_role", Type: `String`},
		{Name: "messages_state", Type: `AggregateFunction(uniqExact, UInt64)`},
		{Name: "delivered_state", Type: `AggregateFunction(uniqExactIf, UInt64, UInt8)`},
		{Name: "read_state", Type: `AggregateFunction(uniqExactIf, UInt64, UInt8)`},
		{Name: "failed_state", Type: `AggregateFunction(uniqExactIf, UInt64, UInt8)`},
		{Name: "delivery_seconds_state", Type: `AggregateFunction(groupUniqArrayIf, Tuple(UInt64, Int64), UInt8)`},
		{Name: "read_seconds_state", Type: `AggregateFunction(groupUniqArrayIf, Tuple(UInt64, Int64), UInt8)`},
		{Name: "read_after_delivery_seconds_state", Type: `AggregateFunction(groupUniqArrayIf, Tuple(UInt64, Int64), UInt8)`},
	}},
	{Name: "message_rollup_mv", Engine: "MaterializedView", Columns: []sink.Column{
		{Name: "bucket", Type: `DateTime('UTC')`},
		{Name: "direction", Type: `String`},
		{Name: "type", Type: `String`},
		{Name: "sender_role", Type: `String`},
		{Name: "messages_state", Type: `AggregateFunction(uniqExact, UInt64)`},
		{Name: "delivered_state", Type: `AggregateFunction(uniqExactIf, UInt64, UInt8)`},
		{Name: "read_state", Type: `AggregateFunction(uniqExactIf, UInt64, UInt8)`},
		{Name: "failed_state", Type: `AggregateFunction(uniqExactIf, UInt64, UInt8)`},
		{Name: "delivery_seconds_state", Type: `AggregateFunction(groupUniqArrayIf, Tuple(UInt64, Int64), UInt8)`},
		{Name: "read_seconds_state", Type: `AggregateFunction(groupUniqArrayIf, Tuple(UInt64, Int64), UInt8)`},
		{Name: "read_after_delivery_seconds_state", Type: `AggregateFunction(groupUniqArrayIf, Tuple(UInt64, Int64), UInt8)`},
	}},
	{Name: "message_turns", Engine: "View", Columns: []sink.Column{
		{Name: "conversation_id", Type: `String`},
		{Name: "message_id", Type: `String`},
		{Name: "sent_at", Type: `DateTime('UTC')`},
		{Name: "opens_turn", Type: `UInt8`},
		{Name: "reply_message_id", Type: `String`},
		{Name: "reply_sent_at", Type: `Nullable(DateTime('UTC'))`},
		{Name: "responder_role", Type: `String`},
		{Name: "responder_id", Type: `String`},
		{Name: "responder_name", Type: `String`},
		{Name: "response_seconds", Type: `Nullable(Float64)`},
	}},
	{Name: "messages", Engine: "ReplacingMergeTree", Columns: []sink.Column{
		{Name: "conversation_id", Type: "String"},
		{Name: "message_id", Type: "String"},
		{Name: "direction", Type: "String"},
		{Name: "type", Type: "String"},
		{Name: "status", Type: "String"},
		{Name: "text", Type: "String"},
		{Name: "media_url", Type: "String"},
		{Name: "caption", Type: "String"},
		{Name: "filename", Type: "String"},
		{Name: "sender_name", Type: "String"},
		{Name: "sender_phone", Type: "String"},
		{Name: "sender_id", Type: "String"},
		{Name: "sender_type", Type: "String"},
		{Name: "sender_role", Type: "String", Default: "DEFAULT " + senderRoleDefault},
		{Name: "recipient_phone", Type: "String"},
		{Name: "reply_to", Type: "String"},
		{Name: "is_template", Type: "UInt8"},
		{Name: "sent_at", Type: "DateTime('UTC')"},
		{Name: "sent_at_ns", Type: "UInt32"},
		{Name: "delivered_at", Type: "Nullable(DateTime('UTC'))"},
		{Name: "read_at", Type: "Nullable(DateTime('UTC'))"},
		{Name: "updated_at", Type: "Nullable(DateTime('UTC'))"},
		{Name: "status_source", Type: "String", Default: "DEFAULT ''"},
		{Name: "enriched", Type: "UInt8"},
		{Name: "enrich_error", Type: "String"},
		{Name: "raw", Type: "String"},
		{Name: "detail_raw", Type: "String"},
		{Name: "fetched_at", Type: "DateTime('UTC')"},
		{Name: "version", Type: "UInt64"},
	}},
	{Name: "messages_current", Engine: "View"}, // columns: same as messages, set below
	{Name: "messages_daily", Engine: "View", Columns: []sink.Column{
		{Name: "day", Type: "Date"},
		{Name: "direction", Type: "String"},
		{Name: "type", Type: "String"},
		{Name: "sender_role", Type: "String"},
		{Name: "messages", Type: "UInt64"},
		{Name: "delivered", Type: "UInt64"},
		{Name: "read", Type: "UInt64"},
		{Name: "failed", Type: "UInt64"},
		{Name: "delivery_p50_seconds", Type: "Nullable(Int64)"},
		{Name: "delivery_p95_seconds", Type: "Nullable(Int64)"},
		{Name: "read_p50_seconds", Type: "Nullable(Int64)"},
		{Name: "read_p95_seconds", Type: "Nullable(Int64)"},
		{Name: "read_after_delivery_p50_seconds", Type: "Nullable(Int64)"},
		{Name: "read_after_delivery_p95_seconds", Type: "Nullable(Int64)"},
	}},
	{Name: "purge_audit", Engine: "ReplacingMergeTree", Columns: []sink.Column{
		{Name: "at", Type: "DateTime('UTC')"},
		{Name: "run_id", Type: "String"},
		{Name: "action", Type: "String"},
		{Name: "event", Type: "String"},
		{Name: "conversation_id", Type: "String"},
		{Name: "archived_messages", Type: "UInt64"},
		{Name: "newest_sent_at", Type: "DateTime('UTC')"},
		{Name: "dry_run", Type: "UInt8"},
		{Name: "reason", Type: "String"},
		{Name: "api_answer", Type: "String"},
		{Name: "operator", Type: "String"},
		{Name: "operator_reason", Type: "String"},
	}},
	{Name: "quarantine", Engine: "ReplacingMergeTree", Columns: []sink.Column{
		{Name: "received_at", Type: "DateTime('UTC')"},
		{Name: "run_id", Type: "String"},
		{Name: "endpoint", Type: "String"},
		{Name: "conversation_id", Type: "String"},
		{Name: "message_id", Type: "String"},
		{Name: "error", Type: "String"},
		{Name: "raw", Type: "String"},
		{Name: "raw_hash", Type: "UInt64"},
	}},
	{Name: "schema_migrations", Engine: "MergeTree", Columns: []sink.Column{
		{Name: "version_id", Type: "Int64"},
		{Name: "is_applied", Type: "UInt8"},
		{Name: "tstamp", Type: "DateTime('UTC')", Default: "DEFAULT now()"},
	}},
	{Name: "status_checks", Engine: "ReplacingMergeTree", Columns: []sink.Column{
		{Name: "conversation_id", Type: "String"},
		{Name: "message_id", Type: "String"},
		{Name: "sent_at", Type: "DateTime('UTC')"},
		{Name: "until", Type: "DateTime('UTC')"},
		{Name: "checked_at", Type: "DateTime('UTC')"},
		{Name: "next_check_at", Type: "DateTime('UTC')"},
		{Name: "checks", Type: "UInt16"},
		{Name: "open", Type: "UInt8"},
		{Name: "kind", Type: "UInt8", Default: "DEFAULT 0"},
		{Name: "version", Type: "UInt64"},
	}},
	{Name: "sweep_state", Engine: "ReplacingMergeTree", Columns: []sink.Column{
		{Name: "scope", Type: "String"},
		{Name: "mark", Type: "DateTime('UTC')"},
		{Name: "mark_ns", Type: "UInt32"},
		{Name: "chain_start", Type: "DateTime('UTC')"},
		{Name: "chain_start_ns", Type: "UInt32"},
		{Name: "list_order", Type: "String"},
		{Name: "updated_at", Type: "DateTime('UTC')"},
		{Name: "version", Type: "UInt64"},
	}},
	{Name: "sync_runs", Engine: "ReplacingMergeTree", Columns: []sink.Column{
		{Name: "run_id", Type: "String"},
		{Name: "kind", Type: "String", Default: "DEFAULT 'sync'"},
		{Name: "shard", Type: "String", Default: "DEFAULT ''"},
		{Name: "started_at", Type: "DateTime('UTC')"},
		{Name: "finished_at", Type: "DateTime('UTC')"},
		{Name: "result", Type: "String"},
		{Name: "conversations", Type: "UInt32"},
		{Name: "new_messages", Type: "UInt64"},
		{Name: "enriched", Type: "UInt64"},
		{Name: "rechecked", Type: "UInt64"},
		{Name: "quarantined", Type: "UInt64"},
		{Name: "requests", Type: "UInt64"},
		{Name: "error", Type: "String"},
		{Name: "version", Type: "UInt64"},
	}},
	{Name: "sync_state", Engine: "ReplacingMergeTree", Columns: []sink.Column{
		{Name: "conversation_id", Type: "String"},
		{Name: "gone", Type: "UInt8"},
		{Name: "head_message_id", Type: "String"},
		{Name: "head_sent_at", Type: "DateTime('UTC')"},
		{Name: "head_sent_at_ns", Type: "UInt32"},
		{Name: "gap_before", Type: "Array(String)"},
		{Name: "gap_stop", Type: "Array(String)"},
		{Name: "backfill_complete", Type: "UInt8"},
		{Name: "last_attempt_at", Type: "DateTime('UTC')"},
		{Name: "last_success_at", Type: "DateTime('UTC')"},
		{Name: "last_error", Type: "String"},
		{Name: "next_due_at", Type: "DateTime('UTC')"},
		{Name: "idle_runs", Type: "UInt32"},
		{Name: "updated_at", Type: "DateTime('UTC')"},
		{Name: "version", Type: "UInt64"},
		{Name: "purged_at", Type: "DateTime('UTC')", Default: "DEFAULT toDateTime(0, 'UTC')"},
	}},
	{Name: "tracked_conversations", Engine: "ReplacingMergeTree", Columns: []sink.Column{
		{Name: "conversation_id", Type: "String"},
		{Name: "active", Type: "UInt8", Default: "DEFAULT 1"},
		{Name: "source", Type: "String", Default: "DEFAULT 'manual'"},
		{Name: "updated_at", Type: "DateTime('UTC')", Default: "DEFAULT now()"},
	}},
	{Name: "webhook_events", Engine: "ReplacingMergeTree", Columns: []sink.Column{
		{Name: "event_id", Type: "String"},
		{Name: "received_at", Type: "DateTime('UTC')"},
		{Name: "event", Type: "String"},
		{Name: "conversation_id", Type: "String"},
		{Name: "message_id", Type: "String"},
		{Name: "raw", Type: "String"},
		{Name: "processed", Type: "UInt8"},
		{Name: "outcome", Type: "String"},
		{Name: "version", Type: "UInt64"},
	}},
}

// senderRoleDefault is messages.sender_role's DEFAULT as system.columns shows it.
const senderRoleDefault = "multiIf(lower(sender_type) IN ('user', 'customer', 'contact'), 'customer', " +
	"lower(sender_type) = 'agent', 'agent', lower(sender_type) IN ('bot', 'ai'), 'bot', lower(sender_type) = 'system', 'system', " +
	"(sender_type = '') AND (direction = 'inbound'), 'customer', 'unknown')"

func init() {
	// The view exposes exactly the columns of messages (without their
	// defaults).
	byName := map[string]int{}
	for i, t := range wantSchema {
		byName[t.Name] = i
	}
	var view []sink.Column
	for _, c := range wantSchema[byName["messages"]].Columns {
		c.Default = "" // a view has no defaults
		view = append(view, c)
	}
	wantSchema[byName["messages_current"]].Columns = view
}

// lowCardinality are the columns of messages that current releases make LowCardinality.
var lowCardinality = []string{"direction", "type", "status", "sender_type", "sender_role", "enrich_error"}

// wantSchemaOf is wantSchema as a current release (current) or 18.16 makes it.
func wantSchemaOf(current bool) []sink.Table {
	if !current {
		return wantSchema
	}
	out := slices.Clone(wantSchema)
	for i, t := range out {
		if t.Name != "messages" && t.Name != "messages_current" { // the view, made again after the types (00081), has the table's
			continue
		}
		t.Columns = slices.Clone(t.Columns)
		for j, c := range t.Columns {
			if slices.Contains(lowCardinality, c.Name) {
				t.Columns[j].Type = "LowCardinality(" + c.Type + ")"
			}
		}
		out[i] = t
	}
	return out
}

// sameDefault compares columns' defaults as expressions, not as a server formats them: servers
// differ in the parentheses and spaces they print around the same expression.
var sameDefault = cmp.Transformer("expression", func(c sink.Column) sink.Column {
	c.Default = strings.NewReplacer("(", "", ")", "", " ", "").Replace(c.Default)
	return c
})

func TestMigrateFreshThenAgain(t *testing.T) {
	st := openStore(t, sinktest.FreshDatabase(t))
	ctx := testContext(t)

	applied, err := st.Migrate(ctx)
	if err != nil {
		t.Fatalf("first Migrate: %v", err)
	}
	if diff := cmp.Diff(allMigrations, applied); diff != "" {
		t.Errorf("first Migrate applied (-want +got):\n%s", diff)
	}
	schema, err := st.Schema(ctx)
	if err != nil {
		t.Fatalf("Schema: %v", err)
	}
	current, err := st.CurrentRelease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantSchemaOf(current), schema, sameDefault); diff != "" {
		t.Errorf("schema after first Migrate (-want +got):\n%s", diff)
	}
	if current { // 18.16 has no codecs
		var codecs []string
		if err := st.Conn().QueryRow(ctx, "SELECT groupArray(concat(name, ' ', compression_codec)) FROM (SELECT name, compression_codec FROM system.columns WHERE database = ? AND table = 'messages' AND name IN ('raw', 'sent_at') ORDER BY name)",
			st.Database()).Scan(&codecs); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"raw CODEC(ZSTD(3))", "sent_at CODEC(Delta(4), ZSTD(1))"}, codecs); diff != "" {
			t.Errorf("codecs of messages (-want +got):\n%s", diff)
		}
		// A settled month is merged whole, and the view reads it without merging at query time.
		var engine, view string
		if err := st.Conn().QueryRow(ctx, "SELECT engine_full FROM system.tables WHERE database = ? AND name = 'messages'", st.Database()).Scan(&engine); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(engine, "min_age_to_force_merge_seconds = 86400") || !strings.Contains(engine, "min_age_to_force_merge_on_partition_only = 1") {
			t.Errorf("messages' engine %q does not merge a quiet month whole", engine)
		}
		if err := st.Conn().QueryRow(ctx, "SELECT create_table_query FROM system.tables WHERE database = ? AND name = 'messages_current'", st.Database()).Scan(&view); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(view, "do_not_merge_across_partitions_select_final = 1") {
			t.Errorf("messages_current %q merges across months", view)
		}
	}

	again, err := st.Migrate(ctx)
	if err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	if again == nil || len(again) != 0 {
		t.Errorf("second Migrate applied %#v, want an empty list", again)
	}
	schema2, err := st.Schema(ctx)
	if err != nil {
		t.Fatalf("Schema: %v", err)
	}
	if diff := cmp.Diff(schema, schema2); diff != "" {
		t.Errorf("second Migrate changed the schema (-before +after):\n%s", diff)
	}

	// Each version is recorded once (plus goose's version 0).
	var rows, versions uint64
	q := "SELECT count(), uniqExact(version_id) FROM " + st.TableName(sink.MigrationsTable)
	if err := st.Conn().QueryRow(ctx, q).Scan(&rows, &versions); err != nil {
		t.Fatalf("count versions: %v", err)
	}
	if want := uint64(len(allMigrations) + 1); rows != want || versions != want {
		t.Errorf("%s holds %d rows of %d versions, want %d of %d", sink.MigrationsTable, rows, versions, want, want)
	}
}

func TestSchemaListsAllTables(t *testing.T) {
	st := migratedStore(t)
	schema, err := st.Schema(testContext(t))
	if err != nil {
		t.Fatalf("Schema: %v", err)
	}
	got := map[string]string{}
	for _, tb := range schema {
		got[tb.Name] = tb.Engine
		if len(tb.Columns) == 0 {
			t.Errorf("table %s: no columns listed", tb.Name)
		}
	}
	for _, name := range []string{"messages", "messages_current", "sync_state", "quarantine", "tracked_conversations", "sync_runs", "status_checks"} {
		if _, ok := got[name]; !ok {
			t.Errorf("Schema lacks %s; got %v", name, got)
		}
	}
}

func TestOpenMissingDatabaseThenMigrate(t *testing.T) {
	db := sinktest.DatabaseName(t) // not created
	st := openStore(t, db)
	ctx := testContext(t)
	if err := st.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	schema, err := st.Schema(ctx)
	if err != nil {
		t.Fatalf("Schema of a missing database: %v", err)
	}
	if len(schema) != 0 {
		t.Errorf("Schema of a missing database: %v, want none", schema)
	}
	applied, err := st.Migrate(ctx)
	if err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if diff := cmp.Diff(allMigrations, applied); diff != "" {
		t.Errorf("Migrate applied (-want +got):\n%s", diff)
	}
}

func TestMigrateConcurrentCalls(t *testing.T) {
	st := openStore(t, sinktest.FreshDatabase(t))
	ctx := testContext(t)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total []string
	)
	for range 3 {
		wg.Go(func() {
			applied, err := st.Migrate(ctx)
			if err != nil {
				t.Errorf("Migrate: %v", err)
			}
			mu.Lock()
			total = append(total, applied...)
			mu.Unlock()
		})
	}
	wg.Wait()
	if diff := cmp.Diff(allMigrations, total); diff != "" {
		t.Errorf("concurrent Migrate calls applied, together (-want +got):\n%s", diff)
	}
}

func TestMessagesCurrentKeepsNewestVersion(t *testing.T) {
	st := migratedStore(t)
	ctx := testContext(t)
	conn := st.Conn()

	sent := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	read := sent.Add(time.Minute)
	// Two inserts make two parts; with merges stopped, both versions stay on disk and only
	// the view can collapse them.
	if err := conn.Exec(ctx, "SYSTEM STOP MERGES "+st.TableName("messages")); err != nil {
		t.Fatalf("stop merges: %v", err)
	}
	for _, v := range []struct {
		version uint64
		status  string
		readAt  *time.Time
	}{
		{1, "sent", nil},
		{2, "read", &read},
	} {
		batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+st.TableName("messages")+
			" (conversation_id, message_id, status, text, sent_at, sent_at_ns, read_at, fetched_at, version)")
		if err != nil {
			t.Fatalf("PrepareBatch: %v", err)
		}
		if err := batch.Append("c1", "m1", v.status, "hello", sent, uint32(123456789), v.readAt, sent, v.version); err != nil {
			t.Fatalf("Append: %v", err)
		}
		if err := batch.Send(); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	// A second message with one version, which must be kept too.
	if err := conn.Exec(ctx, "INSERT INTO "+st.TableName("messages")+
		" (conversation_id, message_id, status, version) SELECT 'c1', 'm2', 'sent', 1"); err != nil {
		t.Fatalf("insert m2: %v", err)
	}

	var raw uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM "+st.TableName("messages")+" WHERE message_id = 'm1'").Scan(&raw); err != nil {
		t.Fatalf("count: %v", err)
	}
	if raw != 2 {
		t.Fatalf("messages holds %d rows of m1, want both versions", raw)
	}

	rows, err := conn.Query(ctx, "SELECT message_id, status, version, sent_at, sent_at_ns, read_at FROM "+
		st.TableName("messages_current")+" ORDER BY message_id")
	if err != nil {
		t.Fatalf("query messages_current: %v", err)
	}
	defer rows.Close()
	type row struct {
		ID, Status string
		Version    uint64
		SentAt     time.Time
		SentAtNs   uint32
		ReadAt     *time.Time
	}
	var got []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.ID, &r.Status, &r.Version, &r.SentAt, &r.SentAtNs, &r.ReadAt); err != nil {
			t.Fatalf("scan: %v", err)
		}
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("rows: %v", err)
	}
	want := []row{
		{ID: "m1", Status: "read", Version: 2, SentAt: sent, SentAtNs: 123456789, ReadAt: &read},
		{ID: "m2", Status: "sent", Version: 1, SentAt: time.Unix(0, 0).UTC()},
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
		t.Errorf("messages_current (-want +got):\n%s", diff)
	}
}

func TestTrackedConversationsPlainInsert(t *testing.T) {
	st := migratedStore(t)
	ctx := testContext(t)
	conn := st.Conn()
	table := st.TableName("tracked_conversations")

	type tracked struct {
		ID, Source string
		Active     uint8
		UpdatedAt  time.Time
	}
	current := func() []tracked {
		t.Helper()
		rows, err := conn.Query(ctx, "SELECT conversation_id, active, source, updated_at FROM "+table+" FINAL ORDER BY conversation_id")
		if err != nil {
			t.Fatalf("query: %v", err)
		}
		defer rows.Close()
		var out []tracked
		for rows.Next() {
			var r tracked
			if err := rows.Scan(&r.ID, &r.Active, &r.Source, &r.UpdatedAt); err != nil {
				t.Fatalf("scan: %v", err)
			}
			out = append(out, r)
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("rows: %v", err)
		}
		return out
	}

	// What an operator types in clickhouse-client is
	//   INSERT INTO tracked_conversations (conversation_id) VALUES ('c1')
	// clickhouse-go cannot send VALUES to 18.16, so the same insert goes as INSERT ... SELECT:
	// only the id is given, and the defaults fill in the rest.
	before := time.Now().Add(-2 * time.Second)
	for _, id := range []string{"c1", "c2"} {
		if err := conn.Exec(ctx, "INSERT INTO "+table+" (conversation_id) SELECT ?", id); err != nil {
			t.Fatalf("track %s: %v", id, err)
		}
	}
	got := current()
	if len(got) != 2 {
		t.Fatalf("tracked_conversations: %+v, want c1 and c2", got)
	}
	for _, r := range got {
		if r.Active != 1 || r.Source != "manual" || r.UpdatedAt.Before(before) || r.UpdatedAt.After(time.Now().Add(2*time.Second)) {
			t.Errorf("tracked %+v: want active=1, source=manual, updated_at about now", r)
		}
	}

	// Untrack c1 by inserting it again with active = 0; the newest row wins, even within the
	// same second (equal versions: the row inserted last is kept).
	if err := conn.Exec(ctx, "INSERT INTO "+table+" (conversation_id, active) SELECT 'c1', 0"); err != nil {
		t.Fatalf("untrack c1: %v", err)
	}
	got = current()
	if len(got) != 2 || got[0].ID != "c1" || got[0].Active != 0 || got[1].ID != "c2" || got[1].Active != 1 {
		t.Errorf("after untracking c1: %+v, want c1 inactive and c2 active", got)
	}
}

func TestServerVersion(t *testing.T) {
	st := openStore(t, sinktest.FreshDatabase(t))
	v, err := st.ServerVersion(testContext(t))
	if err != nil {
		t.Fatalf("ServerVersion: %v", err)
	}
	if v == "" || !strings.Contains(v, ".") {
		t.Errorf("ServerVersion = %q, want a dotted version", v)
	}
	t.Logf("ClickHouse %s", v)
}

func TestOpenClosedPortFailsFast(t *testing.T) {
	// A port that nothing listens on: bind one, then free it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	ctx := testContext(t)
	start := time.Now()
	st, err := sink.Open(ctx, sink.Options{Addr: []string{addr}, Database: "whatever", DialTimeout: 2 * time.Second})
	elapsed := time.Since(start)
	if err == nil {
		st.Close()
		t.Fatalf("Open(%s) succeeded, want an error", addr)
	}
	if !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "ClickHouse") {
		t.Errorf("Open error %q: want it to name ClickHouse and %s", err, addr)
	}
	if elapsed > 5*time.Second {
		t.Errorf("Open took %v to fail, want it fast", elapsed)
	}
	t.Logf("error: %v", err)
}

func TestOpenRejectsBadDatabaseName(t *testing.T) {
	_, err := sink.Open(context.Background(), sink.Options{Addr: []string{"127.0.0.1:1"}, Database: "x; DROP"})
	if err == nil || !strings.Contains(err.Error(), "database name") {
		t.Errorf("Open with a bad database name: %v, want a database name error", err)
	}
}

// A client whose connection ends in a reset (a killed process with unread data, a cut network)
// costs the server that connection only: the next clients are served. The development server
// of current releases (chDB's clickhouse-local behind deploy/clickhouse/chdb-serve.c) aborted
// on a reset unless its launcher's relay turned it into an orderly close.
func TestServerSurvivesResetConnections(t *testing.T) {
	ctx := testContext(t)
	var (
		mu    sync.Mutex
		conns []*net.TCPConn
	)
	c, err := clickhouse.Open(&clickhouse.Options{
		Addr: []string{sinktest.Addr(t)},
		DialContext: func(ctx context.Context, addr string) (net.Conn, error) {
			var d net.Dialer
			conn, err := d.DialContext(ctx, "tcp", addr)
			if err == nil {
				mu.Lock()
				conns = append(conns, conn.(*net.TCPConn))
				mu.Unlock()
			}
			return conn, err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 3 {
		// A session waiting for its next query, then reset.
		if err := c.Ping(ctx); err != nil {
			t.Fatalf("ping %d: %v", i, err)
		}
		mu.Lock()
		for _, conn := range conns {
			_ = conn.SetLinger(0) // close with a reset
			_ = conn.Close()
		}
		conns = nil
		mu.Unlock()
		// Fresh sessions, several round trips each.
		st := openStore(t, "default")
		for j := range 10 {
			var one uint8
			if err := st.Conn().QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
				t.Fatalf("after %d reset sessions, query %d of a new session: %v", i+1, j, err)
			}
		}
		st.Close()
	}
}
