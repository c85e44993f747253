package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/sink/sinktest"
	"github.com/cekat-archiver/cekat-archiver/sink/storetest"
	"github.com/cekat-archiver/cekat-archiver/syncer"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekatsim"
	"github.com/cekat-archiver/cekat-archiver/syncer/webhook"
)

// After webhooks that named only their message, `erase --phone --yes`
// leaves no row naming the number in any table of the archive (every
// String column of every table searched, independently of the erasure's
// own search); an id that nothing holds is refused, exit 1, with no
// mutation.
func TestEraseByPhoneAfterWebhooks(t *testing.T) {
	chAddr := sinktest.Addr(t)
	ctx := context.Background()
	db := sinktest.DatabaseName(t)
	store := storetest.Migrated(t, sink.Options{Addr: []string{chAddr}, Database: db})
	const secret = "erase-secret"
	recv, err := webhook.New(webhook.Options{Secret: []byte(secret), Store: store})
	if err != nil {
		t.Fatal(err)
	}
	hooks := httptest.NewServer(recv)
	defer hooks.Close()
	sim, err := cekatsim.New(cekatsim.Options{Seed: 8, MessageCounts: []int{6, 8, 5}, Shape: cekatsim.ShapeDocumented,
		Start: time.Now().UTC().Truncate(time.Second), APIKey: "k", WebhookURL: hooks.URL, WebhookSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	api := httptest.NewServer(sim.Handler())
	defer api.Close()
	bo := httptest.NewServer(sim.BackofficeHandler())
	defer bo.Close()
	ids := sim.ConversationIDs()
	env := []string{
		"CEKAT_ARCHIVER_API_BASE_URL", api.URL, "CEKAT_ARCHIVER_API_KEY", "k",
		"CEKAT_ARCHIVER_API_BACKOFFICE_URL", bo.URL, "CEKAT_ARCHIVER_API_BACKOFFICE_TOKEN", cekatsim.DefaultBackofficeToken,
		"CEKAT_ARCHIVER_API_BACKOFFICE_AUTH", "bearer",
		"CEKAT_ARCHIVER_API_RATE_LIMIT_PER_MINUTE", "1000000", "CEKAT_ARCHIVER_API_RATE_LIMIT_PER_DAY", "0",
		"CEKAT_ARCHIVER_CLICKHOUSE_ADDR", chAddr, "CEKAT_ARCHIVER_CLICKHOUSE_DATABASE", db,
		"CEKAT_ARCHIVER_CONVERSATIONS_IDS", strings.Join(ids, ","), "CEKAT_ARCHIVER_LOG_LEVEL", "warn",
	}
	cli := func(wantCode int, args ...string) string {
		t.Helper()
		cliEnv(t, env...)
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != wantCode {
			t.Fatalf("%s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, wantCode, out.String(), errOut.String())
		}
		return out.String() + errOut.String()
	}
	cli(0, "sync", "--once", "--progress=none")

	// Live traffic told by webhooks naming only the message, acted on as
	// the daemon does.
	archive, err := sink.OpenArchive(ctx, store, sink.ArchiveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	client, err := cekat.New(cekat.Options{BaseURL: api.URL, APIKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	engine := syncer.New(client, archive, syncer.Options{ConversationIDs: ids, Now: sim.Now})
	target := ids[0]
	for range 3 {
		sim.Advance(time.Minute)
		sim.AddMessages(target, 2)
		sim.AddMessages(ids[1], 1)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := sim.WebhooksIdle(wctx); err != nil {
		t.Fatal(err)
	}
	if out, err := engine.ApplyEvents(ctx, store); err != nil || out.Sync.Failure() != nil || out.Events == 0 {
		t.Fatalf("webhook events: %+v, %v", out, err)
	}
	if err := archive.Close(ctx); err != nil {
		t.Fatal(err)
	}
	var phone string
	for _, m := range sim.Truth() {
		if m.ConversationID == target && m.SenderPhone != "" {
			phone = m.SenderPhone
		}
	}
	digits := sink.PhoneDigits(phone)
	if before := rowsHolding(t, store, digits); before["webhook_events"] == 0 || before["messages"] == 0 {
		t.Fatalf("rows naming the number before the erasure: %v; the test needs webhook events and messages", before)
	}
	out := cli(0, "erase", "--phone", phone, "--yes")
	if !strings.Contains(out, "verified: no row in any table names the phone number") || strings.Contains(out, digits) {
		t.Errorf("erase output:\n%s", out)
	}
	left := rowsHolding(t, store, digits)
	t.Logf("rows holding the phone number after erase --phone: %v", left)
	if len(left) != 0 {
		t.Errorf("rows still holding the phone number: %v", left)
	}

	// A typo: nothing anywhere; refused, and no mutation sent.
	mutations := func() uint64 {
		var n uint64
		if err := store.Conn().QueryRow(ctx, "SELECT count() FROM system.mutations WHERE database = ?", db).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := mutations()
	out = cli(1, "erase", "--conversation", "no-such-conversation", "--yes")
	if !strings.Contains(out, "no such conversation") {
		t.Errorf("erase of an unknown id:\n%s", out)
	}
	if n := mutations(); n != before {
		t.Errorf("%d mutations sent for an unknown id", n-before)
	}
}

// rowsHolding counts, per table of the database, the rows of which any
// String (or Array(String), Nullable(String)) column contains digits.
func rowsHolding(t *testing.T, store *sink.Store, digits string) map[string]uint64 {
	t.Helper()
	ctx := context.Background()
	rows, err := store.Conn().Query(ctx, "SELECT table, name, type FROM system.columns WHERE database = ? AND table IN "+
		"(SELECT name FROM system.tables WHERE database = ? AND engine NOT IN ('View', 'MaterializedView')) AND type LIKE '%String%'",
		store.Database(), store.Database())
	if err != nil {
		t.Fatal(err)
	}
	conds := map[string][]string{}
	for rows.Next() {
		var table, col, typ string
		if err := rows.Scan(&table, &col, &typ); err != nil {
			t.Fatal(err)
		}
		expr := "`" + col + "`"
		switch {
		case strings.HasPrefix(typ, "Array"):
			expr = "arrayStringConcat(" + expr + ", ' ')"
		case strings.HasPrefix(typ, "Nullable"):
			expr = "ifNull(" + expr + ", '')"
		case typ != "String":
			continue
		}
		conds[table] = append(conds[table], fmt.Sprintf("position(%s, '%s') > 0", expr, digits))
	}
	rows.Close()
	out := map[string]uint64{}
	for table, cs := range conds {
		var n uint64
		if err := store.Conn().QueryRow(ctx, "SELECT count() FROM "+store.TableName(table)+" WHERE "+strings.Join(cs, " OR ")).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			out[table] = n
		}
	}
	return out
}
