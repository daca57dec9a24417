package cluster

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// stopGrace is how long a control-plane process gets between SIGTERM and SIGKILL.
const stopGrace = 10 * time.Second

// process is one control-plane child (etcd, kube-apiserver, kube-controller-manager). Its
// output goes to a log file in the cluster directory, so a failure can point at it.
type process struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	logFile *os.File
	// done is closed when the process has exited; err then holds what Wait returned.
	done chan struct{}
	err  error
}

// startProcess starts bin with args, logging to logPath. The child gets SIGKILL when the
// thread that started it dies (Pdeathsig), so a test binary that is killed leaves no
// control plane behind; Go never retires an OS thread unless a goroutine exits while locked
// to it, which nothing in this package does.
func startProcess(name, bin string, args []string, logPath string) (*process, error) {
	return startProcessEnv(name, bin, args, nil, logPath)
}

// startProcessEnv is startProcess with env added to the environment of this process.
func startProcessEnv(name, bin string, args, env []string, logPath string) (*process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open the %s log: %w", name, err)
	}
	fmt.Fprintf(logFile, "--- %s %s %s\n", time.Now().Format(time.RFC3339), bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	p := &process{name: name, logPath: logPath, cmd: cmd, logFile: logFile, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended, with its exit error.
func (p *process) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// stop sends SIGTERM to the process group, waits up to grace, then SIGKILLs it.
func (p *process) stop(grace time.Duration) {
	if done, _ := p.exited(); done {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(grace):
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// failure describes an early exit with the tail of the log, which is where etcd and the
// Kubernetes binaries say what went wrong.
func (p *process) failure() error {
	_, err := p.exited()
	return fmt.Errorf("%s exited (%v); its log is %s, ending:\n%s", p.name, err, p.logPath, tail(p.logPath, 15))
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return "  " + strings.Join(lines, "\n  ")
}

// errPortTaken marks a start that failed because a port was grabbed between choosing it and
// binding it; Start then retries with new ports.
var errPortTaken = errors.New("port taken")

// portTaken reports whether the log of a failed process says that a port was in use.
func portTaken(logPath string) bool {
	data, _ := os.ReadFile(logPath)
	return bytes.Contains(data, []byte("address already in use"))
}

// Process is a host process that lives and dies with the cluster: the operator run with
// the kubeconfig of its ServiceAccount, say. Its output goes to logs/<name>.log in the
// cluster directory; it gets SIGKILL if the process that started it dies, and Stop stops
// it before anything else.
type Process struct{ p *process }

// StartProcess starts argv[0] with the rest of argv as arguments and env added to this
// process's environment. Cluster.Stop stops it (SIGTERM, 10s, SIGKILL) before the pods
// and the control plane, so it never sees the cluster go away under it.
func (c *Cluster) StartProcess(name string, argv, env []string) (*Process, error) {
	if name == "" || strings.ContainsAny(name, "/\x00") || len(argv) == 0 {
		return nil, fmt.Errorf("StartProcess needs a name without '/' and a command (got %q, %q)", name, argv)
	}
	bin, err := exec.LookPath(argv[0])
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p, err := startProcessEnv(name, bin, argv[1:], env, filepath.Join(c.logDir, name+".log"))
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.extra = append(c.extra, p)
	c.mu.Unlock()
	return &Process{p}, nil
}

// PID is the process id.
func (p *Process) PID() int { return p.p.cmd.Process.Pid }

// LogPath is the file that holds the process's stdout and stderr.
func (p *Process) LogPath() string { return p.p.logPath }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.p.done }

// Err describes how the process exited, with the end of its log, or is nil while it runs.
func (p *Process) Err() error {
	if done, _ := p.p.exited(); !done {
		return nil
	}
	return p.p.failure()
}

// Stop sends SIGTERM to the process group, waits up to 10s, then SIGKILLs it.
func (p *Process) Stop() { p.p.stop(stopGrace) }
