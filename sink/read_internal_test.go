package sink

import (
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
)

func TestBrokenConn(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("read: %w", net.ErrClosed), true},
		{fmt.Errorf("failed to read packet: %w", io.EOF), true},
		{fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{errors.New("read tcp 127.0.0.1:1->127.0.0.1:2: use of closed network connection"), true},
		{errors.New("code: 60, message: Table db.messages doesn't exist"), false},
		{errors.New("code: 62, message: Syntax error"), false},
	}
	for _, tt := range tests {
		if got := brokenConn(tt.err); got != tt.want {
			t.Errorf("brokenConn(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
