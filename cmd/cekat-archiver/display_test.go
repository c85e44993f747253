package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/syncer"
)

var longID = strings.Repeat("x", 10<<10)

func TestDisplay(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"conv_abc123", "conv_abc123"},
		{"0b8d2c1e-5f3a-4c2b-9e1d-7a6b5c4d3e2f", "0b8d2c1e-5f3a-4c2b-9e1d-7a6b5c4d3e2f"},
		{"q'1 a/b?x=1#top", "q'1 a/b?x=1#top"}, // odd but harmless: as it is
		{"ünïcödé 日本語 😀", "ünïcödé 日本語 😀"},
		{"", `""`},
		{"nul\x00byte", `"nul\x00byte"`},
		{"tab\there", `"tab\there"`},
		{"two\nlines", `"two\nlines"`},
		{"\x1b[2J\x1b[31mred", `"\x1b[2J\x1b[31mred"`},
		{"bad\xffutf8", `"bad\xffutf8"`},
		{"rtl\u202eoverride", `"rtl\u202eoverride"`},
		{"zero\u200bwidth", `"zero\u200bwidth"`},
		{" padded ", `" padded "`},
		{longID, strings.Repeat("x", 64) + "…"},
		{strings.Repeat("日", 100), strings.Repeat("日", 64) + "…"},
		{"\x00" + longID, `"\x00` + strings.Repeat("x", 63) + `"…`},
	} {
		if got := display(tt.in, maxIDRunes); got != tt.want {
			t.Errorf("display(%.40q) = %.100q, want %.100q", tt.in, got, tt.want)
		}
	}
	if got := displayLines("a: fine\nb: \x1b]0;title\x07", 80); got != "a: fine\n"+`"b: \x1b]0;title\a"` {
		t.Errorf("displayLines = %q", got)
	}
}

// safeForTerminal fails the test for output a terminal would not show as
// written, or lines longer than max runes.
func safeForTerminal(t *testing.T, out string, max int) {
	t.Helper()
	if !utf8.ValidString(out) {
		t.Errorf("output is not valid UTF-8: %q", out)
	}
	for _, line := range strings.Split(out, "\n") {
		for _, r := range line {
			if !unicode.IsPrint(r) {
				t.Errorf("output holds %U: %q", r, line)
				break
			}
		}
		if n := utf8.RuneCountInString(line); n > max {
			t.Errorf("a line of %d runes: %.120q", n, line)
		}
	}
}

func TestSummaryEscapesUntrustedStrings(t *testing.T) {
	var out bytes.Buffer
	printSummary(&out, syncer.Summary{RunID: "run-1", Failed: 2, Attempted: 3,
		Errors: []string{"conv\x00nul: cekat list: HTTP 404", longID + ": cekat detail: HTTP 500", "c\t1: \x1b[31mred\x1b[0m"},
		Err:    errors.New("flush to ClickHouse: message \x1b[2J" + longID), StoppedBy: "budget\r\nspent"})
	s := out.String()
	safeForTerminal(t, s, maxLineRunes+40)
	for _, want := range []string{`"conv\x00nul: cekat list: HTTP 404"`, `"c\t1: \x1b[31mred\x1b[0m"`, "…", `"budget\r\nspent"`,
		`FAILED: "flush to ClickHouse: message \x1b[2Jxxx`} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %s:\n%s", want, s)
		}
	}
}

func TestStatusEscapesUntrustedStrings(t *testing.T) {
	var out bytes.Buffer
	rows := []sink.ConversationStatus{
		{State: sink.State{ConversationID: "plain", BackfillComplete: true}, Archived: 3},
		{State: sink.State{ConversationID: "nul\x00\ttab", LastError: "cekat list: HTTP 404\nnot found"}},
		{State: sink.State{ConversationID: longID, LastError: longID}},
		{State: sink.State{ConversationID: ""}},
	}
	if err := printStatus(&out, rows, 0); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	safeForTerminal(t, s, maxIDRunes+maxLineRunes+150)
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	if len(lines) != 6 {
		t.Fatalf("%d lines for 4 conversations and the totals:\n%s", len(lines), s)
	}
	for i, want := range []string{"plain ", `"nul\x00\ttab" `, strings.Repeat("x", 64) + "… ", `"" `} {
		if !strings.HasPrefix(lines[i+1], want) {
			t.Errorf("line %d = %.100q, want it to start with %q", i+1, lines[i+1], want)
		}
	}
	if !strings.Contains(lines[2], `"cekat list: HTTP 404\nnot found"`) {
		t.Errorf("last error not escaped: %q", lines[2])
	}
}

// An error naming an untrusted value reaches stderr escaped.
func TestCLIErrorsAreEscaped(t *testing.T) {
	name := filepath.Join(t.TempDir(), "ids\x1b[2J\x07.txt")
	cliEnv(t, "CEKAT_ARCHIVER_API_BASE_URL", "http://127.0.0.1:1", "CEKAT_ARCHIVER_API_KEY", "k",
		"CEKAT_ARCHIVER_CONVERSATIONS_FILE", name)
	var out, errOut bytes.Buffer
	if code := run([]string{"config", "check"}, &out, &errOut); code != 1 {
		t.Fatalf("exit %d, want 1; stderr %q", code, errOut.String())
	}
	safeForTerminal(t, errOut.String(), maxLineRunes+40)
	if !strings.Contains(errOut.String(), `\x1b[2J\a.txt`) {
		t.Errorf("stderr does not name the file, escaped: %q", errOut.String())
	}
	if _, err := os.Stat(name); err == nil {
		t.Fatal("the file exists")
	}
}
