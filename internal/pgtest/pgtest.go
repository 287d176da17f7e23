// Package pgtest starts a throwaway PostgreSQL cluster for the tests of a
// test binary, or takes one from BATCH_TEST_POSTGRES_URL.
//
// The cluster is created on first use (initdb into a temporary directory,
// pg_ctl start on a Unix socket in it, as the postgres user when the tests
// run as root) and stopped by [Stop], which TestMain calls after m.Run.
// Without the server binaries the tests skip, except under CI, where they
// fail.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// EnvURL names the variable that points the tests at an existing server.
const EnvURL = "BATCH_TEST_POSTGRES_URL"

var (
	once    sync.Once
	url     string
	dataDir string
	binDir  string
	runAs   *user.User
	baseDir string
	errNo   error // the binaries are missing
	errUp   error // the cluster did not start
)

// URL returns the connection string of the test cluster, starting it on the
// first call. It skips the test when no server can be had outside CI.
func URL(t testing.TB) string {
	t.Helper()
	once.Do(start)
	if errNo != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("no PostgreSQL: %v", errNo)
		}
		t.Fatalf("no PostgreSQL under CI: %v", errNo)
	}
	if errUp != nil {
		t.Fatalf("PostgreSQL test cluster: %v", errUp)
	}
	return url
}

// Schema returns a fresh schema name for one test.
func Schema(t testing.TB) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "t_" + hex.EncodeToString(b[:])
}

// Stop stops the cluster if this process started one and removes its files.
func Stop() {
	if dataDir == "" {
		return
	}
	_ = pgctl("stop", "-D", dataDir, "-m", "immediate", "-w")
	_ = os.RemoveAll(baseDir)
	dataDir = ""
}

func start() {
	if u := os.Getenv(EnvURL); u != "" {
		url = u
		return
	}
	binDir, errNo = findBin()
	if errNo != nil {
		return
	}
	errUp = startCluster()
}

// findBin finds the directory holding initdb and pg_ctl.
func findBin() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		return "", errors.New("initdb not found (install the postgresql package or set " + EnvURL + ")")
	}
	return filepath.Dir(matches[len(matches)-1]), nil
}

func startCluster() error {
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return fmt.Errorf("running as root needs the postgres user: %w", err)
		}
		runAs = u
	}
	var err error
	baseDir, err = os.MkdirTemp("", "batchpg")
	if err != nil {
		return err
	}
	dataDir = filepath.Join(baseDir, "data")
	if runAs != nil {
		uid, _ := strconv.Atoi(runAs.Uid)
		gid, _ := strconv.Atoi(runAs.Gid)
		if err := os.Chown(baseDir, uid, gid); err != nil {
			return err
		}
	}
	if out, err := run(filepath.Join(binDir, "initdb"), "-D", dataDir, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"); err != nil {
		return fmt.Errorf("initdb: %w: %s", err, out)
	}
	opts := fmt.Sprintf("-k %s -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 -c shared_buffers=64MB", baseDir)
	if err := pgctl("start", "-D", dataDir, "-o", opts, "-l", filepath.Join(baseDir, "log"), "-w", "-t", "60"); err != nil {
		log, _ := os.ReadFile(filepath.Join(baseDir, "log"))
		dataDir = ""
		return fmt.Errorf("pg_ctl start: %w: %s", err, log)
	}
	url = fmt.Sprintf("host=%s port=5432 user=postgres dbname=postgres sslmode=disable", baseDir)
	return nil
}

func pgctl(args ...string) error {
	out, err := run(filepath.Join(binDir, "pg_ctl"), args...)
	if err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	return nil
}

// run runs a server binary, as the postgres user when we are root.
func run(bin string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = baseDir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if runAs != nil {
		uid, _ := strconv.Atoi(runAs.Uid)
		gid, _ := strconv.Atoi(runAs.Gid)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		cmd.Env = append(cmd.Env, "HOME="+runAs.HomeDir)
	}
	// Output goes to a file, not a pipe: the server pg_ctl starts keeps
	// its inherited descriptors open, and a pipe would never reach EOF.
	f, err := os.CreateTemp("", "pgtest-out")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	err = cmd.Run()
	out, _ := os.ReadFile(f.Name())
	return out, err
}
