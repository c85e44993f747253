package sink

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"strings"
	"testing/fstest"
	"time"
)

// DefaultZooKeeperPath is the ZooKeeper path of a replicated table when
// Options.ZooKeeperPath is empty. {shard} is the server's macro; {database}
// and {table} are filled in by the archiver, since ClickHouse 18.16 has no
// such macros.
const DefaultZooKeeperPath = "/clickhouse/tables/{shard}/{database}/{table}"

// DefaultReplicaName is the replica name of a replicated table when
// Options.ReplicaName is empty: the server's {replica} macro.
const DefaultReplicaName = "{replica}"

// insertQuorumTimeout bounds how long an insert waits for every replica to
// hold its rows. A replica that stops during an insert fails it after this
// long (ClickHouse's default is 10 minutes), and the rows stay buffered for
// the next flush.
const insertQuorumTimeout = time.Minute

// clusterDDL turns the archive's single-server DDL into the DDL of a
// cluster of one shard: tables get Replicated engines and every statement
// runs ON CLUSTER. The migration files stay as released (what they do on a
// single server cannot change); Migrate rewrites them when a cluster is set.
//
// What ClickHouse 18.16 allows shapes the rewriting:
//   - a replicated table cannot have column comments (its replicas then
//     refuse the table: "Table structure in ZooKeeper is too different"),
//     and ALTER ... COMMENT COLUMN is not allowed ON CLUSTER: comments are
//     dropped, and a migration that only sets comments does nothing;
//   - a view's SELECT runs on each replica in the server's default
//     database, not the archive's: its tables are qualified.
type clusterDDL struct {
	cluster  string
	database string
	zkPath   string // with {database} and {table} still to fill
	replica  string
}

var (
	createTableRE = regexp.MustCompile(`(?is)^CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\s+(` + identPattern + `)\s*`)
	createViewRE  = regexp.MustCompile(`(?is)^CREATE\s+(MATERIALIZED\s+)?VIEW\s+IF\s+NOT\s+EXISTS\s+(` + qualifiedPattern + `)\s+`)
	// Only current releases have it (migrations/current/).
	replaceViewRE = regexp.MustCompile(`(?is)^CREATE\s+OR\s+REPLACE\s+VIEW\s+(` + qualifiedPattern + `)\s+`)
	alterRE       = regexp.MustCompile(`(?is)^ALTER\s+TABLE\s+(` + qualifiedPattern + `)\s+`)
	dropRE        = regexp.MustCompile(`(?is)^DROP\s+TABLE\s+IF\s+EXISTS\s+(` + qualifiedPattern + `)\s*;?\s*$`)
	renameRE      = regexp.MustCompile(`(?is)^RENAME\s+TABLE\s+[^;]*?\s*;?\s*$`)
	insertRE      = regexp.MustCompile(`(?is)^INSERT\s+INTO\s`)

	engineRE = regexp.MustCompile(`(?s)ENGINE\s*=\s*(Replacing|Aggregating|Summing)?MergeTree\b(\s*\(([^()]*)\))?`)
	// A string literal in ClickHouse: '' and \' escape a quote.
	literal          = `'(?:[^'\\]|''|\\.)*'`
	commentColumnRE  = regexp.MustCompile(`(?is)\bCOMMENT\s+COLUMN\s+` + identPattern + `\s+` + literal + `\s*,?`)
	columnCommentRE  = regexp.MustCompile(`(?is)\s+COMMENT\s+` + literal)
	sourceTableRE    = regexp.MustCompile(`(?is)(\bARRAY\s+JOIN|\bFROM|\bJOIN)(\s+)(` + qualifiedPattern + `)(\s*\()?`)
	materializedToRE = regexp.MustCompile(`(?is)^(\s*TO\s+)(` + identPattern + `)(\s)`)
)

const (
	identPattern     = "(?:[A-Za-z_][A-Za-z0-9_]*|`[^`]+`)"
	qualifiedPattern = "(?:" + identPattern + `)(?:\.(?:` + identPattern + `))?`
)

// rewrite returns the cluster form of one migration file: its comment lines
// as they are, each of its statements rewritten. A statement of a kind it
// does not know is an error rather than a guess.
func (c clusterDDL) rewrite(file string) (string, error) {
	head, body := leadingComments(file)
	out := []string{strings.TrimSuffix(head, "\n")}
	for _, stmt := range splitStatements(body) {
		comments, stmt := leadingComments(stmt)
		rewritten, err := c.statement(stmt)
		if err != nil {
			return "", err
		}
		out = append(out, comments+rewritten)
	}
	return strings.Join(out, "\n") + "\n", nil
}

// leadingComments splits the comment and blank lines at the start of sql
// (with their line ends) from the rest.
func leadingComments(sql string) (string, string) {
	i := 0
	for i < len(sql) {
		end := strings.IndexByte(sql[i:], '\n')
		if end < 0 {
			end = len(sql) - i
		} else {
			end++
		}
		line := strings.TrimSpace(sql[i : i+end])
		if line != "" && !strings.HasPrefix(line, "--") {
			break
		}
		i += end
	}
	return sql[:i], sql[i:]
}

// splitStatements cuts SQL at the semicolons outside string literals and
// comments; each statement keeps its semicolon and the comments before it,
// and loses the space around. A comment after the last semicolon is dropped.
func splitStatements(sql string) []string {
	var out []string
	start, inLiteral := 0, false
	for i := 0; i < len(sql); i++ {
		switch ch := sql[i]; {
		case inLiteral && ch == '\\':
			i++
		case ch == '\'':
			inLiteral = !inLiteral // '' inside a literal toggles twice
		case !inLiteral && ch == '-' && strings.HasPrefix(sql[i:], "--"):
			if nl := strings.IndexByte(sql[i:], '\n'); nl >= 0 {
				i += nl
			} else {
				i = len(sql)
			}
		case !inLiteral && ch == ';':
			out = append(out, strings.TrimSpace(sql[start:i+1]))
			start = i + 1
		}
	}
	// What follows the last semicolon is a statement unless it is only comments.
	if _, rest := leadingComments(sql[start:]); strings.TrimSpace(rest) != "" {
		out = append(out, strings.TrimSpace(sql[start:]))
	}
	return out
}

// statement rewrites one statement (without leading comments).
func (c clusterDDL) statement(stmt string) (string, error) {
	onCluster := "ON CLUSTER " + quoteIdent(c.cluster) + " "
	switch {
	case createTableRE.MatchString(stmt):
		table := unquoteIdent(createTableRE.FindStringSubmatch(stmt)[1])
		m := engineRE.FindStringSubmatchIndex(stmt)
		if m == nil {
			return "", fmt.Errorf("CREATE TABLE %s: no MergeTree engine to replicate", table)
		}
		engine := stmt[m[0]:m[1]]
		kind, args := "", ""
		if m[2] >= 0 {
			kind = stmt[m[2]:m[3]]
		}
		if m[6] >= 0 {
			args = strings.TrimSpace(stmt[m[6]:m[7]])
		}
		replicated := "ENGINE = Replicated" + kind + "MergeTree(" + c.replicationArgs(table)
		if args != "" {
			replicated += ", " + args
		}
		replicated += ")"
		stmt = strings.Replace(stmt, engine, replicated, 1)
		stmt = columnCommentRE.ReplaceAllString(stmt, "")
		loc := createTableRE.FindStringIndex(stmt)
		return stmt[:loc[1]] + onCluster + stmt[loc[1]:], nil

	case createViewRE.MatchString(stmt):
		loc := createViewRE.FindStringIndex(stmt)
		rest := stmt[loc[1]:]
		if createViewRE.FindStringSubmatch(stmt)[1] != "" {
			rest = materializedToRE.ReplaceAllString(rest, "${1}"+quoteIdent(c.database)+".${2}${3}")
		}
		return stmt[:loc[1]] + onCluster + c.qualifySources(rest), nil

	case replaceViewRE.MatchString(stmt):
		loc := replaceViewRE.FindStringIndex(stmt)
		return stmt[:loc[1]] + onCluster + c.qualifySources(stmt[loc[1]:]), nil

	case alterRE.MatchString(stmt):
		loc := alterRE.FindStringIndex(stmt)
		commands := commentColumnRE.ReplaceAllString(stmt[loc[1]:], "")
		if strings.Trim(commands, " \t\n;") == "" {
			return "SELECT 1; -- on a cluster: only column comments, which replicated tables of ClickHouse 18.16 cannot have", nil
		}
		return stmt[:loc[1]] + onCluster + columnCommentRE.ReplaceAllString(commands, ""), nil

	case dropRE.MatchString(stmt), renameRE.MatchString(stmt):
		trimmed := strings.TrimRight(strings.TrimSpace(stmt), ";")
		return trimmed + " " + strings.TrimSpace(onCluster) + ";", nil

	case insertRE.MatchString(stmt):
		// Inserted once, into replicated tables: every replica gets the rows.
		return stmt, nil
	}
	return "", fmt.Errorf("no cluster form for statement %.60q", stmt)
}

// replicationArgs are the first arguments of a Replicated engine.
func (c clusterDDL) replicationArgs(table string) string {
	p := strings.NewReplacer("{database}", c.database, "{table}", table).Replace(c.zkPath)
	return quoteString(p) + ", " + quoteString(c.replica)
}

// qualifySources names the archive's database before every table a SELECT
// reads (FROM and JOIN, not subqueries, table functions nor ARRAY JOIN).
func (c clusterDDL) qualifySources(sel string) string {
	return sourceTableRE.ReplaceAllStringFunc(sel, func(m string) string {
		p := sourceTableRE.FindStringSubmatch(m)
		keyword, space, name, call := p[1], p[2], p[3], p[4]
		if strings.HasPrefix(strings.ToUpper(keyword), "ARRAY") || call != "" || strings.Contains(name, ".") {
			return m
		}
		return keyword + space + quoteIdent(c.database) + "." + name + call
	})
}

// onCluster is the clause that makes a statement of the store run on every
// replica; empty without a cluster.
func (s *Store) onCluster() string {
	if s.opts.Cluster == "" {
		return ""
	}
	return " ON CLUSTER " + quoteIdent(s.opts.Cluster)
}

// clusterDDL returns the rewriter of the store's cluster.
func (s *Store) clusterDDL() clusterDDL {
	return clusterDDL{cluster: s.opts.Cluster, database: s.database, zkPath: s.opts.ZooKeeperPath, replica: s.opts.ReplicaName}
}

// migrations returns the migration files of fsys in their cluster
// form, in an in-memory file system (the standard library's).
func (c clusterDDL) migrations(fsys fs.FS) (fs.FS, error) {
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, err
	}
	out := fstest.MapFS{}
	for _, name := range names {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		text, err := c.rewrite(string(b))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path.Base(name), err)
		}
		out[name] = &fstest.MapFile{Data: []byte(text), Mode: 0o444}
	}
	return out, nil
}

// clusterReplicas checks that the cluster is known to the server and has
// one shard, and returns its number of replicas. Several shards would need
// Distributed tables, which the archive does not make.
func clusterReplicas(ctx context.Context, s *Store) (int, error) {
	var shards, replicas uint64
	err := s.conn.QueryRow(ctx, "SELECT uniqExact(shard_num), count() FROM system.clusters WHERE cluster = ?", s.opts.Cluster).
		Scan(&shards, &replicas)
	if err != nil {
		return 0, fmt.Errorf("sink: look up cluster %s: %w", s.opts.Cluster, err)
	}
	switch {
	case replicas == 0:
		return 0, fmt.Errorf("sink: cluster %s is not in the server's remote_servers (system.clusters)", s.opts.Cluster)
	case shards != 1:
		return 0, fmt.Errorf("sink: cluster %s has %d shards; the archive supports one shard (its replicas)", s.opts.Cluster, shards)
	}
	return int(replicas), nil
}

func unquoteIdent(name string) string {
	return strings.Trim(name, "`")
}

// quoteString quotes a ClickHouse string literal.
func quoteString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
