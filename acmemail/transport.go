package acmemail

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// headerTracker wraps the HTTP transport to the CA. It remembers the
// Retry-After of the latest response per URL (the acme package does not
// expose response headers) and counts requests.
type headerTracker struct {
	next     http.RoundTripper
	requests atomic.Int64

	mu    sync.Mutex
	after map[string]time.Time
}

func (t *headerTracker) RoundTrip(req *http.Request) (*http.Response, error) {
	next := t.next
	if next == nil {
		next = http.DefaultTransport
	}
	t.requests.Add(1)
	resp, err := next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	u := req.URL.String()
	t.mu.Lock()
	if t.after == nil {
		t.after = make(map[string]time.Time)
	}
	if at, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
		t.after[u] = at
	} else {
		delete(t.after, u)
	}
	t.mu.Unlock()
	return resp, nil
}

// retryAfter reports how long the server asked to wait before the next
// request to u, if it did.
func (t *headerTracker) retryAfter(u string, now time.Time) (time.Duration, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.after[u]
	if !ok {
		return 0, false
	}
	return max(at.Sub(now), 0), true
}

// parseRetryAfter reads a Retry-After value: delay-seconds or an HTTP-date.
func parseRetryAfter(v string, now time.Time) (time.Time, bool) {
	if v == "" {
		return time.Time{}, false
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			return time.Time{}, false
		}
		return now.Add(time.Duration(min(secs, 86400)) * time.Second), true
	}
	if at, err := http.ParseTime(v); err == nil {
		return at, true
	}
	return time.Time{}, false
}

// Requests reports how many HTTP requests the client has sent to the CA.
func (c *Client) Requests() int64 {
	if c.tracker == nil {
		return 0
	}
	return c.tracker.requests.Load()
}
