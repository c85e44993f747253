package deploy_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/cekat-archiver/cekat-archiver/config"
	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/sink/sinktest"
	"github.com/cekat-archiver/cekat-archiver/sink/storetest"
)

// demoScript is deploy/demo.sh with its shell variables: name to value, for those it sets
// to a constant.
func demoScript(t *testing.T) (string, map[string]string) {
	t.Helper()
	data, err := os.ReadFile("demo.sh")
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^([A-Z_]+)="([^"$]*)"$`).FindAllStringSubmatch(string(data), -1) {
		vars[m[1]] = m[2]
	}
	return string(data), vars
}

// The demo's configuration is valid, and discovers the conversations through the
// conversation list (which fills the table conversations) instead of reading a file of ids.
func TestDemoDiscovers(t *testing.T) {
	script, _ := demoScript(t)
	m := regexp.MustCompile(`(?s)<<YAML\n(.*?)\nYAML\n`).FindStringSubmatch(script)
	if m == nil {
		t.Fatal("demo.sh writes no configuration (<<YAML ... YAML)")
	}
	dir := t.TempDir()
	yml := strings.NewReplacer("$SIM_ADDR", "127.0.0.1:18090", "$CEKAT_ARCHIVER_CLICKHOUSE_ADDR", "127.0.0.1:19000",
		"$RUN_DIR", dir, "$ZONE", "Asia/Jakarta").Replace(m[1])
	if strings.Contains(yml, "$") {
		t.Fatalf("a variable of the configuration is not replaced here:\n%s", yml)
	}
	// What the demo's RUN_DIR holds when it writes the configuration.
	if err := os.WriteFile(filepath.Join(dir, "conversations.txt"), []byte("c1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if d := cfg.Conversations.Discover; !d.Enabled || len(d.Platforms) != 0 {
		t.Errorf("the demo discovers %v, platforms %v: want every conversation the simulator lists", d.Enabled, d.Platforms)
	}
}

// The demo's median delivery time of a day and direction is the median of its messages'
// delivery times: here nine text messages delivered in 10 to 18 s and one image in 500 s,
// whose median is 15 s (the largest of the medians by type, 500 s, is not it).
func TestDemoMedianIsTheMessagesMedian(t *testing.T) {
	script, vars := demoScript(t)
	m := regexp.MustCompile(`(?m)^q "(SELECT day, direction, .*delivery_p50_s.*)"$`).FindStringSubmatch(script)
	if m == nil {
		t.Fatal("demo.sh has no query of delivery_p50_s by day and direction")
	}
	zone := vars["ZONE"]
	if zone == "" {
		zone = "Asia/Jakarta" // analytics.timezone's default
	}
	query := strings.ReplaceAll(m[1], "$ZONE", zone)
	if !strings.Contains(query, " message_rollup ") && !strings.Contains(query, " messages_daily ") {
		t.Fatalf("the query reads neither message_rollup nor messages_daily: %s", query)
	}
	db := sinktest.FreshDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st := storetest.Migrated(t, sink.Options{Database: db, AnalyticsTimezone: zone, Logger: zaptest.NewLogger(t)})
	// The demo's client names the database; the test's connections do not.
	for _, table := range []string{"message_rollup", "messages_daily"} {
		query = strings.ReplaceAll(query, " "+table+" ", " "+st.TableName(table)+" ")
	}
	conn := st.Conn()
	if err := conn.Exec(ctx, `INSERT INTO `+st.TableName("messages")+`
		(conversation_id, message_id, direction, type, sender_role, status, sent_at, delivered_at, version)
		SELECT 'c1', toString(number), 'outbound', if(number < 9, 'text', 'image'), 'agent', 'delivered',
			toDateTime('2026-12-01 05:00:00', 'UTC') + number * 60,
			toNullable(toDateTime('2026-12-01 05:00:00', 'UTC') + number * 60 + if(number < 9, 10 + number, 500)), 1
		FROM system.numbers LIMIT 10`); err != nil {
		t.Fatal(err)
	}
	var got, want string
	if err := conn.QueryRow(ctx, "SELECT toString(delivery_p50_s) FROM ("+query+") WHERE direction = 'outbound'").Scan(&got); err != nil {
		t.Fatalf("%v\n%s", err, query)
	}
	if err := conn.QueryRow(ctx, "SELECT toString(quantileExact(0.5)(toInt64(delivered_at) - toInt64(sent_at))) FROM "+
		st.TableName("messages")+" WHERE direction = 'outbound'").Scan(&want); err != nil {
		t.Fatal(err)
	}
	if want != "15" {
		t.Fatalf("the messages' median is %s, want 15: the test's data is not what it says", want)
	}
	if got != want {
		t.Errorf("the demo's delivery median is %s s, the messages' median %s s", got, want)
	}
}
