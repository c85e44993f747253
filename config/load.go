package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
	"go.yaml.in/yaml/v3"
)

// Load returns the configuration: Default, overridden by the YAML file at
// path (no file if path is ""), then by the environment variables found by
// lookupEnv (os.LookupEnv if nil), then secrets are read from the *_file
// keys, then the result is validated.
//
// A file that is not YAML is reported alone. Otherwise every problem is
// reported together, one a line as "key.path: problem": those of the file
// and the environment (unknown keys, values of the wrong type) first, then
// those of the secret files and of Validate, but for keys already reported
// (a value that could not be read is checked as its default, which says
// nothing). So one run of `config check` shows everything to fix.
//
// Environment variables set to "" are ignored; list variables
// (CEKAT_ARCHIVER_CLICKHOUSE_ADDR, CEKAT_ARCHIVER_CONVERSATIONS_IDS) are
// split on commas; values and list items are trimmed of spaces.
func Load(path string, lookupEnv func(string) (string, bool)) (Config, error) {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	cfg := Default()
	var p problems
	var unread []string
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return Config{}, err
		}
		if unread, err = decodeYAML(data, &cfg, &p); err != nil {
			return Config{}, fmt.Errorf("parsing %s: %w", path, err)
		}
	}
	applyEnv(&cfg, lookupEnv, &p)
	if cfg.Sync.SpoolDir == "" {
		cfg.Sync.SpoolDir = DefaultSpoolDir()
	}
	read := len(p)
	readSecretFiles(&cfg, &p)
	cfg.validate(&p)
	if len(p) > 0 {
		p = p.dropRepeatedKeys(read, unread...)
		return Config{}, p.err()
	}
	return cfg, nil
}

// decodeYAML decodes data over cfg, rejecting unknown keys. It adds the
// problems of single keys to p and returns an error if data is not YAML.
// It also returns the key paths of the mappings it could not read ("" for
// the whole file): yaml reads nothing of a mapping that holds a duplicate
// key, so its keys keep their defaults.
func decodeYAML(data []byte, cfg *Config, p *problems) (unread []string, _ error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(cfg)
	if errors.Is(err, io.EOF) {
		return nil, nil // empty, or only comments
	}
	var typeErr *yaml.TypeError
	if err != nil && !errors.As(err, &typeErr) {
		return nil, err
	}
	switch err := dec.Decode(new(yaml.Node)); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, err
	default:
		return nil, errors.New("more than one YAML document")
	}

	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, err // decoded once already: cannot happen
	}
	f := indexFile(&root)
	var found []lineProblem
	if typeErr != nil {
		for _, msg := range typeErr.Errors {
			lp := f.explain(msg)
			found = append(found, lp)
			if lp.duplicate {
				unread = append(unread, lp.parent)
			}
		}
	}
	found = append(found, f.truncatedFloats()...)
	slices.SortStableFunc(found, func(a, b lineProblem) int { return cmp.Compare(a.line, b.line) })
	for _, lp := range found {
		*p = append(*p, lp.err)
	}
	return unread, nil
}

var (
	lineMessage     = regexp.MustCompile(`^line (\d+): `)
	unknownKeyError = regexp.MustCompile(`^line (\d+): field (.*) not found in type \S+$`)
	duplicateError  = regexp.MustCompile(`^line (\d+): mapping key (".*") already defined at line (\d+)$`)
	wrongTypeError  = regexp.MustCompile("^line (\\d+): cannot unmarshal (\\S+)(?: `(.*)`)? into .+$")
)

// lineProblem is a problem of the file at a line.
type lineProblem struct {
	line int
	err  error
	// duplicate: a key set twice in the mapping at parent.
	duplicate bool
	parent    string
}

// file indexes the nodes of a YAML file by line and knows the Go type of
// every key path.
type file struct {
	keys   map[int][]located // mapping keys
	values map[int][]located // values: mappings, lists, scalars
	all    []located         // values in the order of the file
	types  map[string]reflect.Type
}

func indexFile(root *yaml.Node) *file {
	f := &file{keys: map[int][]located{}, values: map[int][]located{}, types: fieldTypes()}
	f.locate(root, "", nil)
	return f
}

// explain turns one message of a yaml.TypeError, which names Go types, into
// a problem of a key path. A message it does not recognise is kept as it is.
func (f *file) explain(msg string) lineProblem {
	var line int
	if m := lineMessage.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
	}
	if m := unknownKeyError.FindStringSubmatch(msg); m != nil {
		if l, ok := findKey(f.keys[line], m[2]); ok {
			return lineProblem{line: line, err: fmt.Errorf("%s: line %d: unknown key", l.path, line)}
		}
	}
	if m := duplicateError.FindStringSubmatch(msg); m != nil {
		name, err := strconv.Unquote(m[2])
		if l, ok := findKey(f.keys[line], name); ok && err == nil {
			parent := strings.TrimSuffix(strings.TrimSuffix(l.path, name), ".")
			return lineProblem{line: line, err: fmt.Errorf("%s: line %d: duplicate key, first set on line %s", l.path, line, m[3]),
				duplicate: true, parent: parent}
		}
	}
	if m := wrongTypeError.FindStringSubmatch(msg); m != nil {
		if l, ok := findValue(f.values[line], m[2], m[3]); ok {
			if t, ok := typeAt(f.types, l.path); ok {
				return lineProblem{line: line, err: fmt.Errorf("%s: line %d: cannot use %s as %s", l.path, line, describeNode(l.node), describeType(t))}
			}
		}
	}
	return lineProblem{line: line, err: errors.New(msg)}
}

// truncatedFloats finds the numbers with a fraction given for integer keys,
// which yaml silently truncates.
func (f *file) truncatedFloats() []lineProblem {
	var found []lineProblem
	for _, l := range f.all {
		t, ok := typeAt(f.types, l.path)
		if ok && t.Kind() == reflect.Int && l.node.Kind == yaml.ScalarNode && l.node.ShortTag() == "!!float" {
			found = append(found, lineProblem{line: l.node.Line, err: fmt.Errorf("%s: line %d: cannot use %s as %s", l.path, l.node.Line, describeNode(l.node), describeType(t))})
		}
	}
	return found
}

// located is a node of the file with its key path.
type located struct {
	path string
	node *yaml.Node
}

// locate indexes the mapping keys and the values under n.
func (f *file) locate(n *yaml.Node, path string, key *yaml.Node) {
	if n.Kind == yaml.DocumentNode {
		for _, c := range n.Content {
			f.locate(c, path, nil)
		}
		return
	}
	if key != nil {
		f.keys[key.Line] = append(f.keys[key.Line], located{path, key})
	}
	f.values[n.Line] = append(f.values[n.Line], located{path, n})
	f.all = append(f.all, located{path, n})
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			f.locate(n.Content[i+1], joinPath(path, k.Value), k)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			f.locate(c, fmt.Sprintf("%s[%d]", path, i), nil)
		}
	}
}

func findKey(ls []located, name string) (located, bool) {
	for _, l := range ls {
		if l.node.Value == name {
			return l, true
		}
	}
	return located{}, false
}

// findValue finds the value with the tag and the value (shortened by yaml
// when long) of a "cannot unmarshal" message.
func findValue(ls []located, tag, value string) (located, bool) {
	for _, l := range ls {
		if l.node.ShortTag() != tag {
			continue
		}
		v := l.node.Value
		if l.node.Kind != yaml.ScalarNode || v == value ||
			len(v) > 10 && strings.HasSuffix(value, "...") && strings.HasPrefix(v, strings.TrimSuffix(value, "...")) {
			return l, true
		}
	}
	return located{}, false
}

func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return strconv.Quote(n.Value)
	}
}

var durationType = reflect.TypeFor[time.Duration]()

func describeType(t reflect.Type) string {
	switch {
	case t == durationType:
		return `a duration like "30s"`
	case t.Kind() == reflect.Struct:
		return "a mapping"
	case t.Kind() == reflect.Slice:
		return "a list"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() == reflect.Int:
		return "an integer"
	default:
		return "a " + t.Kind().String()
	}
}

// fieldTypes maps every key path, "" for the root, to its Go type.
func fieldTypes() map[string]reflect.Type {
	types := map[string]reflect.Type{"": reflect.TypeFor[Config]()}
	for _, f := range fields() {
		types[f.path] = f.typ
	}
	return types
}

// typeAt returns the type of the value at path, which may end in a list
// index.
func typeAt(types map[string]reflect.Type, path string) (reflect.Type, bool) {
	if strings.HasSuffix(path, "]") {
		i := strings.LastIndexByte(path, '[')
		t, ok := typeAt(types, path[:i])
		if !ok || t.Kind() != reflect.Slice {
			return nil, false
		}
		return t.Elem(), true
	}
	t, ok := types[path]
	return t, ok
}

// field is a key of the configuration.
type field struct {
	path string // key path in the file
	env  string // environment variable; "" for a section
	typ  reflect.Type
}

// fields lists every key of Config, sections before their keys, from the
// yaml, env and envPrefix tags.
func fields() []field {
	var walk func(t reflect.Type, path, env string) []field
	walk = func(t reflect.Type, path, env string) []field {
		var fs []field
		for i := range t.NumField() {
			sf := t.Field(i)
			name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
			p := joinPath(path, name)
			if sf.Type.Kind() == reflect.Struct {
				fs = append(fs, field{path: p, typ: sf.Type})
				fs = append(fs, walk(sf.Type, p, env+sf.Tag.Get("envPrefix"))...)
				continue
			}
			fs = append(fs, field{path: p, env: env + sf.Tag.Get("env"), typ: sf.Type})
		}
		return fs
	}
	return walk(reflect.TypeFor[Config](), "", EnvPrefix)
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// applyEnv sets the keys whose environment variables are set. It parses one
// variable at a time so that a bad value is reported with its key.
func applyEnv(cfg *Config, lookupEnv func(string) (string, bool), p *problems) {
	trim := map[reflect.Type]env.ParserFunc{
		reflect.TypeFor[string](): func(v string) (any, error) { return strings.TrimSpace(v), nil },
	}
	for _, f := range fields() {
		if f.env == "" {
			continue
		}
		v, ok := lookupEnv(f.env)
		v = strings.TrimSpace(v)
		if !ok || v == "" {
			continue
		}
		err := env.ParseWithOptions(cfg, env.Options{
			Prefix:      EnvPrefix,
			Environment: map[string]string{f.env: v}, // never nil: nil would mean os.Environ
			FuncMap:     trim,
		})
		if err != nil {
			p.add(f.path, "%s: cannot use %q as %s", f.env, v, describeType(f.typ))
		}
	}
}

// readSecretFiles sets each secret from its file, when one is named.
func readSecretFiles(c *Config, p *problems) {
	for _, s := range []struct {
		key, fileKey string
		value        *Secret
		file         string
	}{
		{"api.key", "api.key_file", &c.API.Key, c.API.KeyFile},
		{"api.backoffice_token", "api.backoffice_token_file", &c.API.BackofficeToken, c.API.BackofficeTokenFile},
		{"clickhouse.password", "clickhouse.password_file", &c.ClickHouse.Password, c.ClickHouse.PasswordFile},
		{"webhook.secret", "webhook.secret_file", &c.Webhook.Secret, c.Webhook.SecretFile},
	} {
		if s.file == "" {
			continue
		}
		if *s.value != "" {
			p.add(s.fileKey, "cannot be set together with %s", s.key)
			continue
		}
		b, err := os.ReadFile(s.file)
		if err != nil {
			p.check(s.fileKey, err)
			continue
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			p.add(s.fileKey, "%s is empty", s.file)
			continue
		}
		*s.value = Secret(v)
	}
}

// UnknownEnv returns, sorted, the names among environ (NAME=value entries,
// as os.Environ gives them) that start with EnvPrefix but name no key: a
// misspelt variable would otherwise be ignored without a word.
// CEKAT_ARCHIVER_CONFIG (read by the command line) and CEKAT_ARCHIVER_TEST_*
// (read by the test suite) are not keys and are not reported.
func UnknownEnv(environ []string) []string {
	known := map[string]bool{EnvPrefix + "CONFIG": true}
	for _, f := range fields() {
		if f.env != "" {
			known[f.env] = true
		}
	}
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, EnvPrefix) && !strings.HasPrefix(name, EnvPrefix+"TEST_") && !known[name] {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
