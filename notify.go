package batch

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/smtp"
	"strings"
	"time"
)

// Mailer sends e-mail: schedule notifications go through it. Implementations
// must be safe for concurrent use.
type Mailer interface {
	Send(ctx context.Context, msg *Message) error
}

// Message is one e-mail.
type Message struct {
	To      []string
	Subject string
	Body    string
	// Severity is the notification's severity ("high", ...), sent as the
	// X-Severity header and in the subject.
	Severity string
}

// SMTPMailer sends mail through an SMTP server with the standard library.
// The zero value is not usable: set Addr and From.
type SMTPMailer struct {
	// Addr is the server's host:port.
	Addr string
	// From is the envelope and header sender.
	From string
	// Auth, if set, authenticates (for example smtp.PlainAuth).
	Auth smtp.Auth
	// TLS, if set, is used for STARTTLS when the server offers it.
	TLS *tls.Config
}

var _ Mailer = (*SMTPMailer)(nil)

// Send delivers msg, honouring ctx for the connection and the exchange.
func (m *SMTPMailer) Send(ctx context.Context, msg *Message) error {
	if len(msg.To) == 0 {
		return nil
	}
	for _, a := range append([]string{m.From}, msg.To...) {
		if strings.ContainsAny(a, "\r\n<>") {
			return fmt.Errorf("batch: bad e-mail address %q", a)
		}
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", m.Addr)
	if err != nil {
		return fmt.Errorf("batch: smtp dial: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	host, _, _ := net.SplitHostPort(m.Addr)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("batch: smtp: %w", err)
	}
	defer c.Close()
	if ok, _ := c.Extension("STARTTLS"); ok && m.TLS != nil {
		if err := c.StartTLS(m.TLS); err != nil {
			return fmt.Errorf("batch: smtp starttls: %w", err)
		}
	}
	if m.Auth != nil {
		if err := c.Auth(m.Auth); err != nil {
			return fmt.Errorf("batch: smtp auth: %w", err)
		}
	}
	if err := c.Mail(m.From); err != nil {
		return fmt.Errorf("batch: smtp MAIL: %w", err)
	}
	for _, to := range msg.To {
		if err := c.Rcpt(to); err != nil {
			return fmt.Errorf("batch: smtp RCPT %s: %w", to, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("batch: smtp DATA: %w", err)
	}
	var b bytes.Buffer
	subject := strings.NewReplacer("\r", " ", "\n", " ").Replace(msg.Subject)
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n",
		m.From, strings.Join(msg.To, ", "), subject, time.Now().UTC().Format(time.RFC1123Z))
	if msg.Severity != "" {
		fmt.Fprintf(&b, "X-Severity: %s\r\n", strings.NewReplacer("\r", "", "\n", "").Replace(msg.Severity))
	}
	b.WriteString("\r\n")
	b.WriteString(strings.ReplaceAll(msg.Body, "\n", "\r\n"))
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("batch: smtp write: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("batch: smtp: %w", err)
	}
	return c.Quit()
}

// notifySchedule sends a schedule's notifications when one of its jobs
// completes or fails. It runs as an event subscriber, so the sending
// happens on goroutines of its own: a slow mail server or receiver delays
// nothing else.
func (e *Engine) notifySchedule(ev Event) {
	if ev.Job == nil || ev.Job.ScheduleID == "" || (ev.Type != EventJobCompleted && ev.Type != EventJobFailed) {
		return
	}
	s, err := e.Schedule(context.Background(), ev.Job.ScheduleID)
	if err != nil || s.Notification == nil {
		return
	}
	tgt := s.Notification.OnCompletion
	if ev.Type == EventJobFailed {
		tgt = s.Notification.OnFailure
	}
	if tgt == nil {
		return
	}
	j := ev.Job
	outcome := "completed"
	if ev.Type == EventJobFailed {
		outcome = "failed"
	}
	subject := fmt.Sprintf("[batch] %s: job %s %s", s.Name, j.ID, outcome)
	if tgt.Severity != "" {
		subject = fmt.Sprintf("[%s] %s", tgt.Severity, subject)
	}
	body := fmt.Sprintf("Schedule %s (%s) ran job %s.\nStatus: %s\nItems: %d, completed %d, failed %d\n",
		s.Name, s.ID, j.ID, j.Status, j.Progress.TotalOperations, j.Progress.Completed, j.Progress.Failed)
	if j.Error != nil {
		body += "Error: " + j.Error.Message + "\n"
	}
	if tgt.Severity != "" {
		body += "Severity: " + tgt.Severity + "\n"
	}
	if len(tgt.Email) > 0 {
		msg := &Message{To: tgt.Email, Subject: subject, Body: body, Severity: tgt.Severity}
		e.wg.Go(func() {
			if e.opts.Mailer == nil {
				e.log.Warn("notify: no Mailer configured; e-mail dropped", "schedule_id", s.ID, "to", strings.Join(tgt.Email, ","))
				return
			}
			ctx, cancel := context.WithTimeout(e.ctx, time.Minute)
			defer cancel()
			if err := e.opts.Mailer.Send(ctx, msg); err != nil {
				e.log.Error("notify: sending e-mail failed", "schedule_id", s.ID, "err", err)
			}
		})
	}
	if tgt.Webhook != "" {
		payload, err := payloadOf(ev)
		if err != nil {
			return
		}
		url := tgt.Webhook
		e.wg.Go(func() { e.notifyWebhook(url, payload, tgt.Severity) })
	}
}

// notifyWebhook posts a notification payload, trying a few times.
func (e *Engine) notifyWebhook(url string, payload []byte, severity string) {
	client := e.webhookClient()
	defer client.CloseIdleConnections()
	delay := e.opts.WebhookRetryDelay
	for attempt := 1; attempt <= 3; attempt++ {
		ctx, cancel := context.WithTimeout(e.ctx, e.opts.WebhookTimeout)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(payload))
		if err != nil {
			cancel()
			return
		}
		req.Header.Set("Content-Type", "application/json")
		if severity != "" {
			req.Header.Set("X-Severity", severity)
		}
		res, err := client.Do(req)
		if err == nil {
			res.Body.Close()
		}
		cancel()
		if err == nil && res.StatusCode >= 200 && res.StatusCode < 300 {
			return
		}
		t := time.NewTimer(delay)
		select {
		case <-e.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay *= 2
	}
	e.log.Warn("notify: webhook notification not delivered", "url", url)
}
