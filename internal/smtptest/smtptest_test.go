package smtptest_test

import (
	"net/smtp"
	"net/textproto"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchworks/batch/internal/smtptest"
)

// The server takes mail from the standard library's client and records
// each message's envelope and data, one entry per message.
func TestServer_RecordsMessages(t *testing.T) {
	t.Parallel()
	srv := smtptest.New(t)
	require.Empty(t, srv.Messages())
	require.NoError(t, smtp.SendMail(srv.Addr(), nil, "from@example.com", []string{"a@example.com", "b@example.com"},
		[]byte("Subject: one\r\n\r\nfirst body\r\n")))
	require.NoError(t, smtp.SendMail(srv.Addr(), nil, "from@example.com", []string{"c@example.com"},
		[]byte("Subject: two\r\n\r\nsecond body\r\n")))
	msgs := srv.Messages()
	require.Len(t, msgs, 2)
	require.Equal(t, "MAIL FROM:<from@example.com>\nRCPT TO:<a@example.com>\nRCPT TO:<b@example.com>\nSubject: one\r\n\r\nfirst body\r\n", msgs[0])
	require.Equal(t, "MAIL FROM:<from@example.com>\nRCPT TO:<c@example.com>\nSubject: two\r\n\r\nsecond body\r\n", msgs[1])
	msgs[0] = "changed"
	require.NotEqual(t, "changed", srv.Messages()[0], "Messages returns a copy")
}

func TestServer_Dialogue(t *testing.T) {
	t.Parallel()
	srv := smtptest.New(t)
	c, err := textproto.Dial("tcp", srv.Addr())
	require.NoError(t, err)
	defer c.Close()
	_, _, err = c.ReadResponse(220)
	require.NoError(t, err)
	for _, step := range []struct {
		cmd  string
		code int
	}{{"HELO test", 250}, {"NOOP", 250}, {"VRFY someone", 502}, {"QUIT", 221}} {
		id, err := c.Cmd("%s", step.cmd)
		require.NoError(t, err)
		c.StartResponse(id)
		_, _, err = c.ReadResponse(step.code)
		c.EndResponse(id)
		require.NoError(t, err, step.cmd)
	}
	require.Empty(t, srv.Messages())
}
