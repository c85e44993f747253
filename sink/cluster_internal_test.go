package sink

import (
	"io/fs"
	"regexp"
	"strings"
	"testing"
)

func testClusterDDL() clusterDDL {
	return clusterDDL{cluster: "c1", database: "arch", zkPath: DefaultZooKeeperPath, replica: DefaultReplicaName}
}

// Every released migration has a cluster form: tables replicated under
// their own ZooKeeper path, every DDL statement ON CLUSTER, no column
// comments, and every table a view reads named with the archive's database.
func TestClusterFormOfEveryMigration(t *testing.T) {
	all, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	current, err := fs.Sub(currentMigrationFiles, "migrations/current")
	if err != nil {
		t.Fatal(err)
	}
	for _, sub := range []fs.FS{all, current} {
		checkClusterForms(t, sub)
	}
}

func checkClusterForms(t *testing.T, sub fs.FS) {
	t.Helper()
	out, err := testClusterDDL().migrations(sub)
	if err != nil {
		t.Fatal(err)
	}
	names, err := fs.Glob(sub, "*.sql")
	if err != nil || len(names) == 0 {
		t.Fatalf("no migrations: %v", err)
	}
	unqualified := regexp.MustCompile(`(?i)(ARRAY\s+)?\b(?:FROM|JOIN)\s+([A-Za-z_][A-Za-z0-9_]*)\b\s*[^(.\s]`)
	for _, name := range names {
		b, err := fs.ReadFile(out, name)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		if !strings.HasPrefix(text, "-- +goose Up\n-- +goose NO TRANSACTION\n") {
			t.Errorf("%s: goose annotations lost:\n%s", name, text)
		}
		orig, err := fs.ReadFile(sub, name)
		if err != nil {
			t.Fatal(err)
		}
		_, origBody := leadingComments(string(orig))
		_, body := leadingComments(text)
		stmts := splitStatements(body)
		if want := len(splitStatements(origBody)); len(stmts) != want {
			t.Errorf("%s: %d statements, the file has %d:\n%s", name, len(stmts), want, text)
		}
		for _, stmt := range stmts {
			_, stmt = leadingComments(stmt)
			checkClusterStatement(t, name, stmt, unqualified)
		}
	}
}

func checkClusterStatement(t *testing.T, name, stmt string, unqualified *regexp.Regexp) {
	t.Helper()
	upper := strings.ToUpper(stmt)
	switch {
	case strings.HasPrefix(upper, "INSERT"), strings.HasPrefix(upper, "SELECT 1;"):
		return
	case strings.HasPrefix(upper, "CREATE TABLE"):
		table := createTableRE.FindStringSubmatch(stmt)[1]
		wantEngine := "MergeTree('/clickhouse/tables/{shard}/arch/" + table + "', '{replica}'"
		if !strings.Contains(stmt, "ENGINE = Replicated") || !strings.Contains(stmt, wantEngine) {
			t.Errorf("%s: want a Replicated engine with %s:\n%s", name, wantEngine, stmt)
		}
		if strings.Contains(upper, " COMMENT ") {
			t.Errorf("%s: column comments left:\n%s", name, stmt)
		}
	case strings.HasPrefix(upper, "CREATE"):
		for _, m := range unqualified.FindAllStringSubmatch(stmt, -1) {
			if m[1] == "" {
				t.Errorf("%s: a view reads %s without its database:\n%s", name, m[2], stmt)
			}
		}
	case strings.HasPrefix(upper, "ALTER"):
		if strings.Contains(upper, "COMMENT") {
			t.Errorf("%s: comments left in an ALTER:\n%s", name, stmt)
		}
	}
	if !strings.Contains(stmt, "ON CLUSTER `c1`") {
		t.Errorf("%s: no ON CLUSTER:\n%s", name, stmt)
	}
}

func TestClusterStatements(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"CREATE TABLE IF NOT EXISTS t (a String COMMENT 'it''s a', v UInt64 COMMENT 'x') ENGINE = ReplacingMergeTree(v) ORDER BY a;",
			"CREATE TABLE IF NOT EXISTS t ON CLUSTER `c1` (a String, v UInt64) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/arch/t', '{replica}', v) ORDER BY a;"},
		{"CREATE TABLE IF NOT EXISTS r (k String) ENGINE = AggregatingMergeTree ORDER BY k;",
			"CREATE TABLE IF NOT EXISTS r ON CLUSTER `c1` (k String) ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/arch/r', '{replica}') ORDER BY k;"},
		{"CREATE MATERIALIZED VIEW IF NOT EXISTS mv TO target AS\nSELECT a FROM messages;",
			"CREATE MATERIALIZED VIEW IF NOT EXISTS mv ON CLUSTER `c1` TO `arch`.target AS\nSELECT a FROM `arch`.messages;"},
		{"CREATE OR REPLACE VIEW v\n(\n    x String COMMENT 'the x'\n)\nAS SELECT x FROM m FINAL;",
			"CREATE OR REPLACE VIEW v\nON CLUSTER `c1` (\n    x String COMMENT 'the x'\n)\nAS SELECT x FROM `arch`.m FINAL;"},
		{"CREATE VIEW IF NOT EXISTS v AS SELECT x FROM (SELECT x FROM m FINAL) ARRAY JOIN xs AS x JOIN other USING x;",
			"CREATE VIEW IF NOT EXISTS v ON CLUSTER `c1` AS SELECT x FROM (SELECT x FROM `arch`.m FINAL) ARRAY JOIN xs AS x JOIN `arch`.other USING x;"},
		{"ALTER TABLE s ADD COLUMN p DateTime('UTC') DEFAULT toDateTime(0, 'UTC');",
			"ALTER TABLE s ON CLUSTER `c1` ADD COLUMN p DateTime('UTC') DEFAULT toDateTime(0, 'UTC');"},
		{"ALTER TABLE s\n    COMMENT COLUMN a 'the a, or ''b''',\n    COMMENT COLUMN b 'B';",
			"SELECT 1; -- on a cluster: only column comments, which replicated tables of ClickHouse 18.16 cannot have"},
		{"RENAME TABLE a TO b, c TO a;", "RENAME TABLE a TO b, c TO a ON CLUSTER `c1`;"},
		{"DROP TABLE IF EXISTS v;", "DROP TABLE IF EXISTS v ON CLUSTER `c1`;"},
		{"INSERT INTO t (a) SELECT a FROM m;", "INSERT INTO t (a) SELECT a FROM m;"},
	} {
		got, err := testClusterDDL().statement(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("%q:\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}
	// A file of several statements, comments between them.
	file := "-- +goose Up\n-- +goose NO TRANSACTION\n-- two tables\nALTER TABLE a\n    COMMENT COLUMN x 'x; or ''y''';\n" +
		"-- the second\nALTER TABLE b ADD COLUMN z String; -- trailing\n"
	want := "-- +goose Up\n-- +goose NO TRANSACTION\n-- two tables\n" +
		"SELECT 1; -- on a cluster: only column comments, which replicated tables of ClickHouse 18.16 cannot have\n" +
		"-- the second\nALTER TABLE b ON CLUSTER `c1` ADD COLUMN z String;\n"
	if got, err := testClusterDDL().rewrite(file); err != nil || got != want {
		t.Errorf("rewrite(%q):\n got %q, %v\nwant %q", file, got, err, want)
	}

	for _, in := range []string{
		"CREATE TABLE IF NOT EXISTS t (a String) ENGINE = Log;",
		"OPTIMIZE TABLE t FINAL;",
		"CREATE TABLE t (a String) ENGINE = MergeTree ORDER BY a;",
	} {
		if got, err := testClusterDDL().statement(in); err == nil {
			t.Errorf("%q: want an error, got %s", in, got)
		}
	}
}
