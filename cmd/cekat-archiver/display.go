package main

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Strings from the configuration or the API (conversation and message ids,
// upstream errors that quote them) reach the terminal through display: a
// NUL, a tab, an escape sequence or a 10 KB id must not garble the output.
const (
	maxIDRunes   = 64  // an id in a table or a summary
	maxLineRunes = 300 // a line of an error or of a summary
)

// display returns s fit for one cell or line of terminal output: cut after
// max runes (with "…" after it), and quoted with Go escapes
// (strconv.Quote) only when it holds what a terminal would not show as
// itself: control characters (tabs and newlines too), invalid UTF-8,
// invisible or direction-changing characters, or white space at either end.
// The empty string shows as "".
func display(s string, max int) string {
	cut, n := len(s), 0
	for i := range s {
		if n == max {
			cut = i
			break
		}
		n++
	}
	short := s[:cut]
	out := short
	if needsQuoting(short) {
		out = strconv.Quote(short)
	}
	if cut < len(s) {
		out += "…"
	}
	return out
}

func needsQuoting(s string) bool {
	if s == "" || strings.TrimSpace(s) != s {
		return true
	}
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || !unicode.IsPrint(r) {
			return true
		}
		i += size
	}
	return false
}

// displayLines applies display to each line of a multi-line text, such as
// an error listing every configuration problem.
func displayLines(s string, max int) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = display(l, max)
	}
	return strings.Join(lines, "\n")
}
