package acmemail

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-message/textproto"
)

func TestReadHeader(t *testing.T) {
	// fill returns a header section of exactly n bytes: one field and the
	// empty line that ends it.
	fill := func(n int) string {
		return "A: " + strings.Repeat("x", n-len("A: \r\n\r\n")) + "\r\n\r\n"
	}
	tests := []struct {
		name      string
		raw       string
		want      []headerField
		wantBody  string
		wantErr   string
		malformed bool // the error wraps errMalformedHeader
	}{
		{
			name: "folded",
			raw:  "From: a@b\r\nSubject: ACME:\r\n\tabc\r\n def\r\nX : y\r\n\r\nbody\r\n",
			// Unfolded as a MUA shows it: the white space around each
			// line break is one space.
			want:     []headerField{{"From", "a@b"}, {"Subject", "ACME: abc def"}, {"X", "y"}},
			wantBody: "body\r\n",
		},
		{name: "LF", raw: "A: 1\nB: 2\n\nbody", want: []headerField{{"A", "1"}, {"B", "2"}}, wantBody: "body"},
		{name: "no body", raw: "A: 1\r\n", want: []headerField{{"A", "1"}}},
		{name: "no final line break", raw: "A: 1", want: []headerField{{"A", "1"}}},
		{name: "empty", raw: "", want: nil},
		{name: "empty value", raw: "A:\r\nB: \t\r\n\r\n", want: []headerField{{"A", ""}, {"B", ""}}},
		{name: "blank continuation line", raw: "A: 1\r\n \r\n\t2 \r\n\r\n", want: []headerField{{"A", "1 2"}}},
		{name: "space inside a line is kept", raw: "A: 1  2\t 3\r\n", want: []headerField{{"A", "1  2\t 3"}}},
		{name: "colon in the value", raw: "A: b: c\r\n", want: []headerField{{"A", "b: c"}}},
		{name: "blank line ends the header", raw: "A: 1\r\n\r\nB: 2\r\n", want: []headerField{{"A", "1"}}, wantBody: "B: 2\r\n"},
		{name: "exactly the size limit", raw: fill(maxHeaderSize), want: []headerField{{"A", strings.Repeat("x", maxHeaderSize-7)}}},
		{name: "exactly the field limit", raw: strings.Repeat("A: 1\r\n", maxHeaderFields), want: slices.Repeat([]headerField{{"A", "1"}}, maxHeaderFields)},
		{name: "no colon", raw: "A: 1\r\nbogus\r\n\r\n", wantErr: "line 2 \"bogus\" has no colon", malformed: true},
		{name: "leading continuation", raw: " A: 1\r\n\r\n", wantErr: "continuation", malformed: true},
		{name: "empty field name", raw: "A: 1\r\n: 2\r\n", wantErr: "line 2 has a malformed field name", malformed: true},
		{name: "space in a field name", raw: "Fr om: a@b\r\n", wantErr: "malformed field name", malformed: true},
		{name: "non-ASCII field name", raw: "\u017fubject: x\r\n", wantErr: "malformed field name", malformed: true},
		{name: "control in a field name", raw: "From\x00: a@b\r\n", wantErr: "malformed field name", malformed: true},
		{name: "bare CR starts a line", raw: "A: 1\n\rB: 2\n", wantErr: "malformed field name", malformed: true},
		{name: "too many fields", raw: strings.Repeat("A: 1\r\n", maxHeaderFields+1), wantErr: "more than 1000 header fields"},
		{name: "one byte over the size limit", raw: fill(maxHeaderSize + 1), wantErr: "longer than"},
		{name: "too long without an end", raw: "A: " + strings.Repeat("x", maxHeaderSize+10), wantErr: "longer than"},
		{name: "mail too large", raw: "A: 1\r\n\r\n" + strings.Repeat("x", maxMailSize), wantErr: "more than the 10485760 accepted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, body, err := readHeader([]byte(tt.raw))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("readHeader error = %v, want %q", err, tt.wantErr)
				}
				if errors.Is(err, errMalformedHeader) != tt.malformed {
					t.Errorf("readHeader error %v: wraps errMalformedHeader = %v, want %v", err, !tt.malformed, tt.malformed)
				}
				if h != nil || body != nil {
					t.Errorf("readHeader returned %q, %q with an error", h, body)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(h, header(tt.want)) || string(body) != tt.wantBody {
				t.Errorf("readHeader = %q, %q, want %q, %q", h, body, tt.want, tt.wantBody)
			}
		})
	}
}

func TestHeaderAccessors(t *testing.T) {
	long := strings.Repeat("a", maxFieldSize) + "@example.com"
	h, _, err := readHeader([]byte("From: Alice <Alice@EXAMPLE.com>\r\n" +
		"To: b@x.example, Group: c@Y.example, \"d e\"@z.example;\r\n" +
		"to: second@x.example\r\n" +
		"Cc:\r\n" +
		"Sender: " + long + "\r\n" +
		"Reply-To: a@b, c@d\r\n\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if n := h.count("TO"); n != 2 {
		t.Errorf("count(TO) = %d, want 2", n)
	}
	if got := h.values("to"); !slices.Equal(got, []string{"b@x.example, Group: c@Y.example, \"d e\"@z.example;", "second@x.example"}) {
		t.Errorf("values(to) = %q", got)
	}
	if got, err := h.address("From"); got != "Alice@example.com" || err != nil {
		t.Errorf("address(From) = %q, %v, want Alice@example.com (the domain lowercased, the local part kept)", got, err)
	}
	if got, err := h.addresses("To"); !slices.Equal(got, []string{"b@x.example", "c@y.example", "d e@z.example"}) || err != nil {
		t.Errorf("addresses(To) = %q, %v: want the topmost field's addresses, groups flattened", got, err)
	}
	for _, name := range []string{"Cc", "Bcc"} {
		if got, err := h.addresses(name); got != nil || err != nil {
			t.Errorf("addresses(%s) = %q, %v, want none", name, got, err)
		}
		if got, err := h.address(name); err == nil || !strings.Contains(err.Error(), "no address") {
			t.Errorf("address(%s) = %q, %v, want a no-address error", name, got, err)
		}
	}
	if got, err := h.address("Sender"); err == nil || !strings.Contains(err.Error(), "Sender header field is longer than 32768 bytes") {
		t.Errorf("address(Sender) of %d bytes = %q, %v, want a size error", len(long), got, err)
	}
	if got, err := h.address("Reply-To"); err == nil || !strings.Contains(err.Error(), "2 addresses, want exactly one") {
		t.Errorf("address(Reply-To) = %q, %v, want a count error", got, err)
	}
}

func TestParseAddressList(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr string
	}{
		{in: "", want: nil},
		{in: " \t ", want: nil},
		{in: "a@b", want: []string{"a@b"}},
		{in: "Acme-Gen <Acme-Gen@CA.Example>", want: []string{"Acme-Gen@ca.example"}},
		{in: "=?KOI8-R?Q?=F0=D2=C9?= <a@b>", want: []string{"a@b"}},
		{in: "\"quoted local\"@b, <c@[1.2.3.4]>", want: []string{"quoted local@b", "c@[1.2.3.4]"}},
		{in: "g: a@b, c@d;, e@f", want: []string{"a@b", "c@d", "e@f"}},
		{in: "j\u00f6rg@B\u00dcCHER.example", want: []string{"j\u00f6rg@b\u00fccher.example"}},
		{in: "not an address", wantErr: "mail: "},
		{in: "a@", wantErr: "mail: "},
		{in: "<>", wantErr: "mail: "},
		{in: strings.Repeat("a", maxFieldSize-len("@b")+1) + "@b", wantErr: "longer than 32768 bytes"},
	}
	for _, tt := range tests {
		got, err := parseAddressList(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || got != nil {
				t.Errorf("parseAddressList(%.40q) = %q, %v, want an error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("parseAddressList(%q) = %q, %v, want %q", tt.in, got, err, tt.want)
		}
	}
	if got, err := parseAddressList(strings.Repeat("a", maxFieldSize-len("@b")) + "@b"); len(got) != 1 || err != nil {
		t.Errorf("parseAddressList(an address of exactly maxFieldSize bytes) = %d addresses, %v, want 1", len(got), err)
	}
}

func TestSameAddress(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"a@b.example", "a@b.example", true},
		{"a@B.Example", "a@b.example", true},
		{"A@b.example", "a@b.example", false}, // local parts may be case-sensitive
		{"a@b.example", "a@c.example", false},
		{"a@b@c", "a@b@c", true},
		{"a@b@c", "a@B@c", false}, // the domain is after the last @
		{"ab", "ab", false},
		{"", "", false},
		{"a@b", "a@b.", false},
	}
	for _, tt := range tests {
		if got := sameAddress(tt.a, tt.b); got != tt.want {
			t.Errorf("sameAddress(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
		if got := sameAddress(tt.b, tt.a); got != tt.want {
			t.Errorf("sameAddress(%q, %q) = %v, want %v", tt.b, tt.a, got, tt.want)
		}
	}
}

// FuzzReadHeader checks the properties the security checks rely on: the
// limits hold, field names are well-formed, a header written back out
// from the parsed fields reads the same again, and go-message (an
// independent parser, in the same family as the one in go-msgauth's DKIM
// verifier) sees the same fields with the same values whenever it reads
// the header at all: a field one parser saw and the other did not would
// be a way around the checks for duplicates and for what h= signs.
func FuzzReadHeader(f *testing.F) {
	f.Add([]byte("From: a@b\r\nTo: c@d\r\nSubject: ACME: x\r\n\r\nbody"))
	f.Add([]byte("From : a@b\nFrom:\tc@d\n \n\nTo: e@f\n"))
	f.Add([]byte("Subject: x\r\n\tTo: y\r\nTo\t: z\r\n\r\n"))
	f.Add([]byte("From: a@b\rTo: c@d\r\n\r\n"))
	f.Add([]byte("A: 1\r\r\n \t2 \r\n\r\n"))
	f.Add([]byte(": empty\r\n\r\n"))
	f.Add([]byte("\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		h, body, err := readHeader(raw)
		if err != nil {
			if h != nil || body != nil {
				t.Fatalf("readHeader returned %q, %q with error %v", h, body, err)
			}
			return
		}
		if len(h) > maxHeaderFields {
			t.Fatalf("readHeader returned %d fields, more than %d", len(h), maxHeaderFields)
		}
		size := len(raw)
		if body != nil {
			size -= len(body)
			if !bytes.HasSuffix(raw, body) {
				t.Fatalf("body %q is not the end of %q", body, raw)
			}
			if head := raw[:size]; !bytes.HasSuffix(head, []byte("\n\n")) && !bytes.HasSuffix(head, []byte("\n\r\n")) && string(head) != "\n" && string(head) != "\r\n" {
				t.Fatalf("the header section %q does not end with an empty line", head)
			}
		}
		if size > maxHeaderSize {
			t.Fatalf("the header section is %d bytes, more than %d", size, maxHeaderSize)
		}
		var out bytes.Buffer
		for _, fl := range h {
			if !headerValidName([]byte(fl.name)) {
				t.Fatalf("field name %q is malformed", fl.name)
			}
			if strings.Contains(fl.value, "\n") || strings.TrimSpace(fl.value) != fl.value {
				t.Fatalf("field %s has the value %q, not unfolded and trimmed", fl.name, fl.value)
			}
			fmt.Fprintf(&out, "%s: %s\r\n", fl.name, fl.value)
		}
		if out.Len()+2 <= maxHeaderSize {
			out.WriteString("\r\n")
			out.Write(body)
			again, againBody, err := readHeader(out.Bytes())
			if err != nil || !slices.Equal(again, h) || !bytes.Equal(againBody, body) {
				t.Fatalf("the header written back out reads as %q, %q, %v; want %q, %q", again, againBody, err, h, body)
			}
		}

		theirs, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(raw)))
		if err != nil {
			return
		}
		var fields []headerField
		for fi := theirs.Fields(); fi.Next(); {
			fields = append(fields, headerField{fi.Key(), strings.TrimSpace(fi.Value())})
		}
		if len(fields) != len(h) {
			t.Fatalf("readHeader sees %d fields, go-message %d, in %q", len(h), len(fields), raw)
		}
		for i := range h {
			if !strings.EqualFold(h[i].name, fields[i].name) || h[i].value != fields[i].value {
				t.Fatalf("field %d: readHeader sees %q, go-message %q, in %q", i, h[i], fields[i], raw)
			}
		}
	})
}

// FuzzParseAddressList checks that an address that parses can be written
// back as a header value and parses to the same address, alone and in a
// list, that the size limit holds, and that sameAddress agrees.
func FuzzParseAddressList(f *testing.F) {
	for _, s := range []string{
		"a@b",
		"Acme-Gen <Acme-Gen@CA.Example>",
		"\"quoted \\\" local\"@b, <c@[1.2.3.4]>",
		"g: a@b, c@d;, e@f",
		"=?UTF-8?Q?Caf=C3=A9?= <caf\u00e9@B\u00dcCHER.example>",
		"(comment) a . b @ c . d",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		list, err := parseAddressList(v)
		if len(v) > maxFieldSize && err == nil {
			t.Fatalf("parseAddressList accepted %d bytes, more than %d", len(v), maxFieldSize)
		}
		one, oneErr := parseOneAddress(v)
		if err != nil {
			if list != nil || oneErr == nil {
				t.Fatalf("parseAddressList(%q) = %q, %v, but parseOneAddress = %q, %v", v, list, err, one, oneErr)
			}
			return
		}
		if (len(list) == 1) != (oneErr == nil) || (oneErr == nil && one != list[0]) {
			t.Fatalf("parseAddressList(%q) = %q, but parseOneAddress = %q, %v", v, list, one, oneErr)
		}
		var formatted []string
		for _, a := range list {
			at := strings.LastIndexByte(a, '@')
			if at < 0 || addrLowerDomain(a) != a {
				t.Fatalf("parseAddressList(%q) gave %q, not an addr-spec with a lowercase domain", v, a)
			}
			s := (&mail.Address{Address: a}).String()
			if again, err := parseOneAddress(s); err != nil || again != a {
				t.Fatalf("address %q (from %q) formats as %q, which parses as %q, %v", a, v, s, again, err)
			}
			if !sameAddress(a, a) || !sameAddress(a, a[:at+1]+strings.ToUpper(a[at+1:])) {
				t.Fatalf("sameAddress does not match %q with itself or its upper-case domain", a)
			}
			if sameAddress(a, "x"+a) {
				t.Fatalf("sameAddress matches %q with a different local part", a)
			}
			formatted = append(formatted, s)
		}
		if joined := strings.Join(formatted, ", "); len(joined) <= maxFieldSize {
			if again, err := parseAddressList(joined); err != nil || !slices.Equal(again, list) {
				t.Fatalf("addresses %q (from %q) format as %q, which parses as %q, %v", list, v, joined, again, err)
			}
		}
	})
}

// TestChecksShareOneHeaderParse: the challenge checks and the authenticity
// checks refuse the same malformed header sections, with the same reason,
// because they read headers with the same parser.
func TestChecksShareOneHeaderParse(t *testing.T) {
	const rest = "From: ca@ca.example\r\nTo: alice@example.com\r\nSubject: ACME: V4nE8NhYh6edBpfQTg5qqQ\r\n"
	for _, bad := range []string{
		"Fr om: evil@evil.example\r\n",
		"\u017fubject: ACME: x6I65YvEk6xC4KV0QMvdJw\r\n",
		": hidden\r\n",
		"no colon\r\n",
	} {
		raw := []byte(rest + bad + "\r\nbody\r\n")
		_, _, want := readHeader(raw)
		if !errors.Is(want, errMalformedHeader) {
			t.Fatalf("readHeader(%q) error = %v, want a malformed header", raw, want)
		}
		if _, err := ParseChallengeMail(raw); err == nil || !strings.HasSuffix(err.Error(), want.Error()) {
			t.Errorf("ParseChallengeMail(%q) error = %v, want %v", raw, err, want)
		}
		v := &MailVerifier{LookupTXT: func(context.Context, string) ([]string, error) {
			t.Fatal("Verify looked up a DKIM key for a malformed header")
			return nil, nil
		}}
		if _, err := v.Verify(t.Context(), raw, "ca@ca.example"); err == nil || !strings.HasSuffix(err.Error(), want.Error()) {
			t.Errorf("Verify(%q) error = %v, want %v", raw, err, want)
		}
	}
}
