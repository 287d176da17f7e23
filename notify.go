package batch

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
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

// Schedule notifications are written to the outbox in the transaction that
// finishes the schedule's job: an e-mail entry per target with addresses,
// and a stored, signed delivery per target with a webhook URL (sent like a
// webhook's deliveries, signed with the schedule's notification secret).
//
//	mail_outbox   sequence -> mailEntry JSON, until sent or given up
const bucketMailOutbox = "mail_outbox"

// mailAttempts is how many times a notification e-mail is tried.
const mailAttempts = 3

// mailEntry is a stored notification e-mail.
type mailEntry struct {
	ScheduleID string    `json:"schedule_id"`
	Message    Message   `json:"message"`
	Attempts   int       `json:"attempts,omitempty"`
	NextAt     time.Time `json:"next_at"`
}

// notifyCounts says what writeNotifications stored.
type notifyCounts struct{ mails, webhooks int }

// writeNotifications stores the notifications of a schedule whose job
// completed or failed.
func (e *Engine) writeNotifications(tx Tx, ev Event) (notifyCounts, error) {
	var n notifyCounts
	if ev.Job == nil || ev.Job.ScheduleID == "" || (ev.Type != EventJobCompleted && ev.Type != EventJobFailed) {
		return n, nil
	}
	seq, ok := parseObjectID(ev.Job.ScheduleID, scheduleIDPrefix)
	if !ok {
		return n, nil
	}
	var s Schedule
	if err := getObject(tx, bucketSchedules, seq, "schedule", ev.Job.ScheduleID, &s); err != nil {
		if errors.Is(err, ErrNotFound) {
			return n, nil // deleted meanwhile: nobody to tell
		}
		return n, err
	}
	if s.Notification == nil {
		return n, nil
	}
	tgt := s.Notification.OnCompletion
	if ev.Type == EventJobFailed {
		tgt = s.Notification.OnFailure
	}
	if tgt == nil {
		return n, nil
	}
	j := ev.Job
	outcome := "completed"
	if ev.Type == EventJobFailed {
		outcome = "failed"
	}
	if len(tgt.Email) > 0 {
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
		m := mailEntry{ScheduleID: s.ID, Message: Message{To: tgt.Email, Subject: subject, Body: body, Severity: tgt.Severity}, NextAt: ev.At}
		mseq, err := tx.NextSequence(bucketMailOutbox)
		if err != nil {
			return n, err
		}
		if err := putObject(tx, bucketMailOutbox, mseq, &m); err != nil {
			return n, err
		}
		n.mails++
	}
	if tgt.Webhook != "" {
		if s.NotificationSecret == "" {
			secret, err := newSecret()
			if err != nil {
				return n, err
			}
			s.NotificationSecret = secret
			if err := putObject(tx, bucketSchedules, seq, &s); err != nil {
				return n, err
			}
		}
		payload, err := payloadOf(ev)
		if err != nil {
			return n, err
		}
		if err := e.storeDelivery(tx, s.ID, ev, payload, tgt.Webhook, tgt.Severity); err != nil {
			return n, err
		}
		n.webhooks++
	}
	return n, nil
}

// mailLoop sends stored notification e-mails, trying each a few times.
func (e *Engine) mailLoop() {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		next := e.sendMails()
		if !next.IsZero() {
			timer.Reset(max(time.Until(next), time.Millisecond))
		}
		select {
		case <-e.ctx.Done():
			return
		case <-e.mailWake:
		case <-timer.C:
		}
	}
}

// sendMails sends the due e-mails and returns when the next falls due
// (zero when none waits).
func (e *Engine) sendMails() time.Time {
	type entry struct {
		seq uint64
		m   mailEntry
	}
	var due []entry
	var next time.Time
	now := e.now()
	err := e.store.View(func(tx Tx) error {
		return tx.Scan(bucketMailOutbox, nil, func(k, v []byte) bool {
			var m mailEntry
			if json.Unmarshal(v, &m) != nil {
				due = append(due, entry{beUint64(k), mailEntry{Attempts: mailAttempts}})
				return true
			}
			if m.NextAt.After(now) {
				if next.IsZero() || m.NextAt.Before(next) {
					next = m.NextAt
				}
				return true
			}
			due = append(due, entry{beUint64(k), m})
			return true
		})
	})
	if err != nil {
		return now.Add(retryLater)
	}
	for _, d := range due {
		if e.ctx.Err() != nil {
			return time.Time{}
		}
		var sendErr error
		switch {
		case d.m.Attempts >= mailAttempts:
			sendErr = errors.New("unreadable entry")
		case e.opts.Mailer == nil:
			e.log.Warn("notify: no Mailer configured; e-mail dropped", "schedule_id", d.m.ScheduleID, "to", strings.Join(d.m.Message.To, ","))
		default:
			ctx, cancel := context.WithTimeout(e.ctx, time.Minute)
			sendErr = e.opts.Mailer.Send(ctx, &d.m.Message)
			cancel()
			if e.ctx.Err() != nil {
				return time.Time{} // closing: it is sent after a restart
			}
			d.m.Attempts++
		}
		err := e.store.Update(func(tx Tx) error {
			if sendErr == nil || d.m.Attempts >= mailAttempts {
				return tx.Delete(bucketMailOutbox, u64key(d.seq))
			}
			d.m.NextAt = e.now().Add(e.opts.WebhookRetryDelay << (d.m.Attempts - 1))
			if next.IsZero() || d.m.NextAt.Before(next) {
				next = d.m.NextAt
			}
			return putObject(tx, bucketMailOutbox, d.seq, &d.m)
		})
		if err != nil {
			e.log.Error("notify: storing an e-mail attempt failed", "err", err)
		}
		if sendErr != nil {
			e.log.Error("notify: sending e-mail failed", "schedule_id", d.m.ScheduleID, "attempt", d.m.Attempts, "err", sendErr)
		}
	}
	return next
}
