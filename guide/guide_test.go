// Package guide_test runs the queries of docs/analysts.md against an archive of
// simulated conversations and checks every answer against the same figures computed from the
// simulator's truth. A query added to the guide (a ```sql block with a "-- guide: name" line)
// fails the test until it is given its expected answer here.
package guide_test

import (
	"context"
	"fmt"
	"maps"
	"net/http/httptest"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap/zaptest"

	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/sink/storetest"
	"github.com/cekat-archiver/cekat-archiver/syncer"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekatsim"
)

const zone = "Asia/Jakarta"

func TestAnalystGuide(t *testing.T) {
	queries := guideQueries(t)
	for _, shape := range []cekatsim.Shape{cekatsim.ShapeReal, cekatsim.ShapeDocumented} {
		t.Run(string(shape), func(t *testing.T) {
			st, sim := archiveSimulation(t, shape)
			want := expected(truth(t, sim))
			for _, name := range slices.Sorted(maps.Keys(queries)) {
				t.Run(name, func(t *testing.T) {
					exp, ok := want[name]
					if !ok {
						t.Fatalf("the guide's query %q has no expected answer in this test", name)
					}
					start := time.Now()
					got := run(t, st, queries[name])
					// A figure to read with -v, never a condition.
					t.Logf("%s answered in %s", name, time.Since(start).Round(100*time.Microsecond))
					if len(exp) == 0 {
						t.Fatalf("the simulation gives nothing to check %q against", name)
					}
					if diff := cmp.Diff(exp, got); diff != "" {
						t.Errorf("%s (-truth +archive):\n%s\nquery:\n%s", name, diff, queries[name])
					}
				})
			}
			for name := range want {
				if _, ok := queries[name]; !ok {
					t.Errorf("expected answers for %q, which the guide no longer has", name)
				}
			}
		})
	}
}

// guideQueries reads the guide queries of docs/analysts.md by name.
func guideQueries(t *testing.T) map[string]string {
	t.Helper()
	readme, err := os.ReadFile("../docs/analysts.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```sql\n(.*?)```").FindAllStringSubmatch(string(readme), -1)
	out := map[string]string{}
	for _, b := range blocks {
		m := regexp.MustCompile(`(?m)^-- guide: (\S+)\n`).FindStringSubmatch(b[1])
		if m == nil {
			continue
		}
		if _, dup := out[m[1]]; dup {
			t.Fatalf("two guide queries named %s", m[1])
		}
		out[m[1]] = strings.TrimSpace(b[1])
	}
	if len(out) == 0 {
		t.Fatal("docs/analysts.md has no guide queries")
	}
	return out
}

// archiveSimulation archives a simulated history, then moves the clock on
// far enough that every status that can still change is fetched again: the
// archive then equals the truth, with two versions of the messages whose
// status moved.
func archiveSimulation(t *testing.T, shape cekatsim.Shape) (*sink.Store, *cekatsim.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	sim, err := cekatsim.New(cekatsim.Options{Seed: 11, Shape: shape, Conversations: 20, MeanMessages: 40,
		Start: time.Now().UTC().Truncate(time.Second), APIKey: "guide-key"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	st := storetest.Migrated(t, sink.Options{AnalyticsTimezone: zone, Logger: zaptest.NewLogger(t)})
	archive, err := sink.OpenArchive(context.Background(), st, sink.ArchiveOptions{BatchRows: 500, BatchInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { archive.Close(context.Background()) })
	loc, err := time.LoadLocation(zone)
	if err != nil {
		t.Fatal(err)
	}
	client, err := cekat.New(cekat.Options{BaseURL: srv.URL, APIKey: "guide-key", MaxRetries: 3, Location: loc})
	if err != nil {
		t.Fatal(err)
	}
	engine := syncer.New(client, archive, syncer.Options{RecheckWindow: 400 * 24 * time.Hour, Now: sim.Now,
		ConversationIDs: sim.ConversationIDs(), Logger: zaptest.NewLogger(t), Requests: syncer.NewRequestStats(nil)})
	for _, advance := range []time.Duration{0, 2 * time.Minute, time.Hour, 200 * 24 * time.Hour} {
		sim.Advance(advance)
		if sum := engine.Sync(ctx, nil); sum.Failure() != nil {
			t.Fatalf("sync: %v %v", sum.Failure(), sum.Errors)
		}
	}
	if err := archive.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// The versions the archive wrote, not the rows the table holds: a server may have
	// merged them already.
	var messages uint64
	if err := st.Conn().QueryRow(ctx, "SELECT uniqExact(conversation_id, message_id) FROM "+st.TableName("messages")).
		Scan(&messages); err != nil {
		t.Fatal(err)
	}
	versions := uint64(archive.Stats().MessageRows)
	t.Logf("%s shape: %d messages archived in %d versions", shape, messages, versions)
	if versions == messages {
		t.Error("no message has a second version: the guide's queries are not tried against versions")
	}
	return st, sim
}

// message is a message of the truth, in the archive's terms.
type message struct {
	conv, id, direction, typ, role, name, senderID string
	sentNs                                         uint64 // send time in ns since 1970, as sent_at and sent_at_ns hold it
	sent                                           time.Time
	delivered, read                                *time.Time
	isRead                                         bool // read_at known or status read
}

func truth(t *testing.T, sim *cekatsim.Server) []message {
	t.Helper()
	var out []message
	for _, m := range sim.Truth() {
		if m.Malformed || m.Unlisted {
			continue
		}
		ts := m.Timestamp.UTC()
		out = append(out, message{conv: m.ConversationID, id: m.ID, direction: m.Direction, typ: m.Type,
			role: sink.SenderRole(m.Direction, m.SenderType), name: m.SenderName, senderID: m.SenderID,
			sentNs: uint64(ts.Unix())*1e9 + uint64(ts.Nanosecond()), sent: ts, delivered: m.DeliveredAt, read: m.ReadAt,
			isRead: m.ReadAt != nil || m.Status == "read"})
	}
	if len(out) == 0 {
		t.Fatal("the simulator holds no messages")
	}
	return out
}

// expected gives each guide query's rows, rendered as run renders them.
func expected(msgs []message) map[string][][]string {
	loc, _ := time.LoadLocation(zone)
	// A Date scans as midnight UTC.
	day := func(m message) time.Time {
		y, mo, d := m.sent.In(loc).Date()
		return time.Date(y, mo, d, 0, 0, 0, 0, time.UTC)
	}
	out := map[string][][]string{}

	type dayDir struct {
		day time.Time
		dir string
	}
	volume := map[dayDir]int{}
	sent, read := map[time.Time]int{}, map[time.Time]int{}
	var delivery, reading []int64
	byType := map[[2]string]int{}
	for _, m := range msgs {
		volume[dayDir{day(m), m.direction}]++
		byType[[2]string{m.typ, m.direction}]++
		if m.direction != "outbound" {
			continue
		}
		sent[day(m)]++
		if m.isRead {
			read[day(m)]++
		}
		if m.delivered != nil {
			delivery = append(delivery, m.delivered.Unix()-m.sent.Unix())
		}
		if m.read != nil {
			reading = append(reading, m.read.Unix()-m.sent.Unix())
		}
	}
	for _, k := range sortedKeys(volume, func(a, b dayDir) bool { return a.day.Before(b.day) || a.day.Equal(b.day) && a.dir < b.dir }) {
		out["daily-volume"] = append(out["daily-volume"], row(k.day, k.dir, volume[k]))
	}
	for _, d := range sortedKeys(sent, time.Time.Before) {
		out["read-rate"] = append(out["read-rate"], row(d, sent[d], read[d], float64(read[d])/float64(sent[d])))
	}
	out["latency"] = [][]string{row(quantiles(delivery), quantiles(reading))}
	for _, k := range sortedKeys(byType, func(a, b [2]string) bool {
		if byType[a] != byType[b] {
			return byType[a] > byType[b]
		}
		return a[0] < b[0] || a[0] == b[0] && a[1] < b[1]
	}) {
		out["by-type"] = append(out["by-type"], row(k[0], k[1], byType[k]))
	}

	// Turns, per conversation in send order.
	byConv := map[string][]message{}
	for _, m := range msgs {
		byConv[m.conv] = append(byConv[m.conv], m)
	}
	firstResponse := map[string][]float64{} // by responder name
	slowest := map[string][]float64{}       // by conversation
	for conv, ms := range byConv {
		sort.Slice(ms, func(i, j int) bool {
			return ms[i].sentNs < ms[j].sentNs || ms[i].sentNs == ms[j].sentNs && ms[i].id < ms[j].id
		})
		waiting := -1 // index of the customer message that opened the open turn
		for i, m := range ms {
			switch {
			case m.role == sink.RoleCustomer:
				if waiting < 0 {
					waiting = i
				}
			case m.direction == "outbound" && m.role != sink.RoleSystem:
				if waiting >= 0 {
					secs := float64(m.sentNs-ms[waiting].sentNs) / 1e9
					firstResponse[m.name] = append(firstResponse[m.name], secs)
					slowest[conv] = append(slowest[conv], secs)
					waiting = -1
				}
			}
		}
	}
	type agentRow struct {
		name          string
		n             int
		p50, p95, max float64
	}
	var agents []agentRow
	for name, s := range firstResponse {
		agents = append(agents, agentRow{name: name, n: len(s), p50: quantile(s, 0.5), p95: quantile(s, 0.95)})
	}
	sort.Slice(agents, func(i, j int) bool {
		return agents[i].p50 < agents[j].p50 || agents[i].p50 == agents[j].p50 && agents[i].name < agents[j].name
	})
	for _, a := range agents {
		out["first-response-by-agent"] = append(out["first-response-by-agent"], row(a.name, a.n, a.p50, a.p95))
	}
	var convs []agentRow
	for conv, s := range slowest {
		convs = append(convs, agentRow{name: conv, n: len(s), max: slices.Max(s), p50: quantile(s, 0.5)})
	}
	sort.Slice(convs, func(i, j int) bool {
		return convs[i].max > convs[j].max || convs[i].max == convs[j].max && convs[i].name < convs[j].name
	})
	for _, c := range convs[:min(10, len(convs))] {
		out["slowest-conversations"] = append(out["slowest-conversations"], row(c.name, c.n, c.max, c.p50))
	}

	type summary struct {
		conv        string
		n, in, out  int
		first, last time.Time
		agents      map[string]bool
	}
	var sums []summary
	for conv, ms := range byConv {
		s := summary{conv: conv, first: ms[0].sent, last: ms[0].sent, agents: map[string]bool{}}
		for _, m := range ms {
			s.n++
			switch m.direction {
			case "inbound":
				s.in++
			case "outbound":
				s.out++
			}
			if m.sent.Before(s.first) {
				s.first = m.sent
			}
			if m.sent.After(s.last) {
				s.last = m.sent
			}
			if m.role == sink.RoleAgent || m.role == sink.RoleBot || m.direction == "outbound" && m.role == sink.RoleUnknown {
				name := m.name
				if name == "" {
					name = m.senderID
				}
				s.agents[name] = true
			}
		}
		sums = append(sums, s)
	}
	sort.Slice(sums, func(i, j int) bool {
		return sums[i].n > sums[j].n || sums[i].n == sums[j].n && sums[i].conv < sums[j].conv
	})
	for _, s := range sums[:min(10, len(sums))] {
		out["busiest-conversations"] = append(out["busiest-conversations"], row(s.conv, s.n, s.in, s.out,
			s.first.Truncate(time.Second), s.last.Truncate(time.Second), slices.Sorted(maps.Keys(s.agents))))
	}
	return out
}

// quantile is ClickHouse's quantileExact: the element at floor(level * n) of the sorted values.
func quantile[T int64 | float64](values []T, level float64) T {
	if len(values) == 0 {
		return 0
	}
	s := slices.Clone(values)
	slices.Sort(s)
	return s[int(level*float64(len(s)))]
}

func quantiles(values []int64) []int64 {
	return []int64{quantile(values, 0.5), quantile(values, 0.95)}
}

// run runs a guide query against the test archive and renders its rows.
func run(t *testing.T, st *sink.Store, q string) [][]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	q = strings.ReplaceAll(q, "cekat_archive.", "`"+st.Database()+"`.")
	rows, err := st.Conn().Query(ctx, q)
	if err != nil {
		t.Fatalf("%v\nquery:\n%s", err, q)
	}
	defer rows.Close()
	types := rows.ColumnTypes()
	var out [][]string
	for rows.Next() {
		dest := make([]any, len(types))
		for i, ct := range types {
			dest[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(dest...); err != nil {
			t.Fatal(err)
		}
		values := make([]any, len(dest))
		for i, d := range dest {
			values[i] = reflect.ValueOf(d).Elem().Interface()
		}
		out = append(out, row(values...))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// row renders values the same way for the truth and the archive.
func row(values ...any) []string {
	out := make([]string, len(values))
	for i, v := range values {
		out[i] = render(reflect.ValueOf(v))
	}
	return out
}

func render(v reflect.Value) string {
	if !v.IsValid() {
		return "NULL"
	}
	if t, ok := v.Interface().(time.Time); ok {
		return t.UTC().Format(time.DateTime)
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return "NULL"
		}
		return render(v.Elem())
	case reflect.Float32, reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(v.Uint(), 10)
	case reflect.Slice:
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = render(v.Index(i))
		}
		return "[" + strings.Join(parts, ",") + "]"
	case reflect.String:
		return v.String()
	}
	return fmt.Sprint(v.Interface())
}

func sortedKeys[K comparable, V any](m map[K]V, less func(a, b K) bool) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return less(keys[i], keys[j]) })
	return keys
}
