// Package sink stores the archive in ClickHouse: it opens the connection, applies the schema
// migrations embedded in sink/migrations, and describes the resulting schema.
//
// The schema and every query must work on ClickHouse 18.16 (the only server Debian ships, used
// by the tests) and on current releases; see the comments in the migration files.
package sink

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"go.uber.org/zap"
)

// DefaultDatabase is the database used when Options.Database is empty.
const DefaultDatabase = "cekat_archiver"

// DefaultDialTimeout is the dial timeout used when Options.DialTimeout is zero.
const DefaultDialTimeout = 10 * time.Second

// The values of Options.Compression.
const (
	CompressionLZ4  = "lz4"
	CompressionNone = "none"
)

// Options says how to reach ClickHouse.
type Options struct {
	// Addr lists host:port addresses of the native protocol (port 9000 by default on a
	// server); at least one is required.
	Addr []string
	// Database holds the archive's tables; Migrate creates it if missing. It defaults to
	// DefaultDatabase and must be a plain identifier (letters, digits, underscores).
	Database string
	// User defaults to "default".
	User     string
	Password string
	// TLS, when set, makes the connection use TLS with this config.
	TLS *tls.Config
	// DialTimeout bounds each connection attempt; it defaults to DefaultDialTimeout.
	DialTimeout time.Duration
	// Compression of the data sent and received: CompressionLZ4 (the default, "" too) or
	// CompressionNone. On loopback LZ4 costs more CPU than the bytes it saves.
	Compression string
	// Cluster, when set, names the cluster (in the servers' remote_servers)
	// of one shard whose replicas hold the archive: Migrate makes replicated
	// tables and runs its DDL ON CLUSTER, and every insert waits until all
	// the replicas hold its rows (insert_quorum), so that whichever replica a
	// reader asks, a state it sees never claims rows that replica lacks.
	// Empty: a single server.
	Cluster string
	// ZooKeeperPath is the path of a replicated table in ZooKeeper, with
	// the server's macros and {database} and {table}; it defaults to
	// DefaultZooKeeperPath. Used only with Cluster.
	ZooKeeperPath string
	// ReplicaName is a replicated table's replica name, usually a server
	// macro; it defaults to DefaultReplicaName. Used only with Cluster.
	ReplicaName string
	// AnalyticsTimezone is the IANA zone whose days the view messages_daily
	// cuts (Migrate makes it); empty means UTC.
	AnalyticsTimezone string
	// Logger receives the store's logs; clickhouse-go's own logs are sent to it at debug
	// level under the name "clickhouse". Nil means no logging.
	Logger *zap.Logger
}

// Store is an open connection pool to ClickHouse plus the name of the archive's database.
//
// How the database is handled: the connection is opened WITHOUT selecting the archive's
// database (the server's default database is current), so Open and Ping work before the
// database exists; Migrate creates it. Every statement that Store issues, and every statement
// that code using Conn issues, must therefore name tables qualified with the database:
// use TableName ("`db`.`messages`"). Only the migrations themselves run with the archive's
// database selected (on a connection of their own), so the migration files use unqualified
// names.
type Store struct {
	conn     driver.Conn
	database string
	opts     Options // normalized; used to open the migration connection
	log      *zap.Logger
	// quorum is the insert_quorum of every session: the cluster's number of
	// replicas; 0 without a cluster.
	quorum int

	migrateMu sync.Mutex // serializes Migrate within the process
}

// The oldest release whose features the archive uses where it can (migrations/current/,
// lightweight DELETE, view column comments): the one the compose stack names, tested with
// 26.7.
const currentMajor, currentMinor = 24, 8

// CurrentRelease says whether the server is ClickHouse 24.8 or later, where the archive uses
// what releases since 18.16 do better; older servers get the forms that 18.16 supports.
func (s *Store) CurrentRelease(ctx context.Context) (bool, error) {
	v, err := s.ServerVersion(ctx)
	if err != nil {
		return false, err
	}
	var major, minor int
	if _, err := fmt.Sscanf(v, "%d.%d", &major, &minor); err != nil {
		return false, fmt.Errorf("sink: server version %q: %w", v, err)
	}
	return major > currentMajor || major == currentMajor && minor >= currentMinor, nil
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Open connects to ClickHouse over the native protocol (with LZ4 compression unless
// Options.Compression says none) and pings it. It
// does not require the archive's database to exist. An unreachable server gives an error that
// names the addresses tried.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if len(opts.Addr) == 0 {
		return nil, errors.New("sink: no ClickHouse address given")
	}
	if opts.Database == "" {
		opts.Database = DefaultDatabase
	}
	if !identRE.MatchString(opts.Database) {
		return nil, fmt.Errorf("sink: database name %q: only letters, digits and underscores are allowed, not starting with a digit", opts.Database)
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = DefaultDialTimeout
	}
	switch opts.Compression {
	case "":
		opts.Compression = CompressionLZ4
	case CompressionLZ4, CompressionNone:
	default:
		return nil, fmt.Errorf("sink: compression %q: want %q or %q", opts.Compression, CompressionLZ4, CompressionNone)
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.ZooKeeperPath == "" {
		opts.ZooKeeperPath = DefaultZooKeeperPath
	}
	if opts.ReplicaName == "" {
		opts.ReplicaName = DefaultReplicaName
	}
	s := &Store{database: opts.Database, opts: opts, log: opts.Logger}
	if err := s.connect(ctx); err != nil {
		return nil, err
	}
	if opts.Cluster == "" {
		return s, nil
	}
	replicas, err := clusterReplicas(ctx, s)
	if err != nil {
		_ = s.conn.Close()
		return nil, err
	}
	if replicas > 1 {
		// The quorum is a setting of the session: connect again with it.
		_ = s.conn.Close()
		s.quorum = replicas
		if err := s.connect(ctx); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// connect opens s.conn and pings it. clickhouse-go dials the addresses in
// order and takes the first that answers, for every new connection of the
// pool: when a replica stops, the next connection goes to another.
func (s *Store) connect(ctx context.Context) error {
	// The pool's current database is left to the server (see Store).
	conn, err := clickhouse.Open(s.clickhouseOptions(""))
	if err != nil {
		return fmt.Errorf("sink: open ClickHouse connection to %s: %w", strings.Join(s.opts.Addr, ", "), err)
	}
	if err := conn.Ping(ctx); err != nil {
		_ = conn.Close()
		return fmt.Errorf("sink: cannot reach ClickHouse at %s (native protocol): %w", strings.Join(s.opts.Addr, ", "), err)
	}
	s.conn = conn
	return nil
}

// clickhouseOptions builds clickhouse-go's options; database "" leaves the choice to the server.
func (s *Store) clickhouseOptions(database string) *clickhouse.Options {
	opts := s.opts
	var settings clickhouse.Settings
	if s.quorum > 1 {
		settings = clickhouse.Settings{
			"insert_quorum":         s.quorum,
			"insert_quorum_timeout": int(insertQuorumTimeout / time.Millisecond),
		}
	}
	var compression *clickhouse.Compression
	if opts.Compression != CompressionNone {
		compression = &clickhouse.Compression{Method: clickhouse.CompressionLZ4}
	}
	return &clickhouse.Options{
		Protocol: clickhouse.Native,
		Addr:     opts.Addr,
		Auth: clickhouse.Auth{
			Database: database,
			Username: opts.User,
			Password: opts.Password,
		},
		TLS:         opts.TLS,
		DialTimeout: opts.DialTimeout,
		Compression: compression,
		Settings:    settings,
		Logger:      driverLogger(opts.Logger),
		// Without it every pooled connection keeps the encode buffer of its
		// largest batch: 110 MiB still live after a flush of 10,000 rows.
		FreeBufOnConnRelease: true,
	}
}

// Close closes the connection pool.
func (s *Store) Close() error {
	return s.conn.Close()
}

// Ping checks that the server answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.conn.Ping(ctx); err != nil {
		return fmt.Errorf("sink: ping ClickHouse: %w", err)
	}
	return nil
}

// Conn returns the underlying clickhouse-go connection pool. Its current database is not the
// archive's: qualify table names with TableName.
func (s *Store) Conn() driver.Conn {
	return s.conn
}

// Database returns the name of the archive's database.
func (s *Store) Database() string {
	return s.database
}

// TableName returns table qualified with the archive's database, quoted for use in SQL:
// TableName("messages") is "`db`.`messages`".
func (s *Store) TableName(table string) string {
	return quoteIdent(s.database) + "." + quoteIdent(table)
}

// ServerVersion returns the server's version, such as "18.16.1".
func (s *Store) ServerVersion(ctx context.Context) (string, error) {
	var v string
	if err := s.conn.QueryRow(ctx, "SELECT version()").Scan(&v); err != nil {
		return "", fmt.Errorf("sink: query server version: %w", err)
	}
	return v, nil
}

// Table describes a table or view of the archive's database.
type Table struct {
	Name    string
	Engine  string // e.g. "ReplacingMergeTree", "MergeTree", "View"
	Columns []Column
}

// Column is one column of a Table.
type Column struct {
	Name string
	Type string
	// Default is the column's default clause, e.g. "DEFAULT now()"; empty if none.
	Default string
}

// Schema lists the tables and views of the archive's database, sorted by name, with their
// columns in declaration order. It returns an empty list if the database does not exist.
func (s *Store) Schema(ctx context.Context) ([]Table, error) {
	rows, err := s.conn.Query(ctx,
		"SELECT name, engine FROM system.tables WHERE database = ? ORDER BY name", s.database)
	if err != nil {
		return nil, fmt.Errorf("sink: list tables of %s: %w", s.database, err)
	}
	tables := []Table{}
	index := map[string]int{}
	for rows.Next() {
		var t Table
		if err := rows.Scan(&t.Name, &t.Engine); err != nil {
			rows.Close()
			return nil, fmt.Errorf("sink: list tables of %s: %w", s.database, err)
		}
		index[t.Name] = len(tables)
		tables = append(tables, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sink: list tables of %s: %w", s.database, err)
	}

	// system.columns gives each table's columns in declaration order (18.16 has no
	// `position` column to sort by), so no ORDER BY here.
	rows, err = s.conn.Query(ctx,
		"SELECT table, name, type, default_kind, default_expression FROM system.columns WHERE database = ?",
		s.database)
	if err != nil {
		return nil, fmt.Errorf("sink: list columns of %s: %w", s.database, err)
	}
	defer rows.Close()
	for rows.Next() {
		var table, kind, expr string
		var c Column
		if err := rows.Scan(&table, &c.Name, &c.Type, &kind, &expr); err != nil {
			return nil, fmt.Errorf("sink: list columns of %s: %w", s.database, err)
		}
		if kind != "" {
			c.Default = kind + " " + expr
		}
		if i, ok := index[table]; ok {
			tables[i].Columns = append(tables[i].Columns, c)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sink: list columns of %s: %w", s.database, err)
	}
	return tables, nil
}

// quoteIdent quotes a ClickHouse identifier with backquotes.
func quoteIdent(name string) string {
	r := strings.NewReplacer("\\", "\\\\", "`", "\\`")
	return "`" + r.Replace(name) + "`"
}
