package cluster

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// The node agent serves the kubelet's containerLogs endpoint, so `kubectl logs` (which the
// apiserver proxies to the node's InternalIP and kubelet port) works against the local
// cluster. Only the apiserver's kubelet-client certificate is accepted. exec, attach and
// port-forward are not served.

func (c *Cluster) startLogsServer() error {
	host := c.net.gateway.String()
	port, err := freePort(host)
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(c.pki.NodeServingCertFile, c.pki.NodeServingKeyFile)
	if err != nil {
		return fmt.Errorf("load the node serving certificate: %w", err)
	}
	caPEM, err := os.ReadFile(c.pki.CAFile)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("port %d on %s for the node agent's log server: %w", port, host, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /containerLogs/{namespace}/{pod}/{container}", c.serveLogs)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{cert},
			ClientCAs:    pool,
			ClientAuth:   tls.RequireAndVerifyClientCert,
			MinVersion:   tls.VersionTLS12,
		},
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	c.logsPort, c.logsServer = port, srv
	return nil
}

func (c *Cluster) serveLogs(w http.ResponseWriter, r *http.Request) {
	ns, name, container := r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container")
	info, ok := c.Pod(ns, name)
	if !ok {
		http.Error(w, fmt.Sprintf("pod %s/%s does not run on node %s", ns, name, c.opts.NodeName), http.StatusNotFound)
		return
	}
	var ci *ContainerInfo
	for i := range info.Containers {
		if info.Containers[i].Name == container {
			ci = &info.Containers[i]
		}
	}
	if ci == nil {
		http.Error(w, fmt.Sprintf("container %q is not in pod %s/%s", container, ns, name), http.StatusNotFound)
		return
	}
	q := r.URL.Query()
	path := ci.LogPath
	if q.Get("previous") == "true" {
		if ci.RestartCount == 0 {
			http.Error(w, fmt.Sprintf("previous terminated container %q in pod %q not found", container, name), http.StatusBadRequest)
			return
		}
		path = filepath.Join(info.Dir, "logs", container, fmt.Sprintf("%d.log", ci.RestartCount-1))
	}
	if path == "" {
		http.Error(w, fmt.Sprintf("container %q in pod %q is waiting to start", container, name), http.StatusBadRequest)
		return
	}
	f, err := os.Open(path)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	defer f.Close()
	if n, err := strconv.Atoi(q.Get("tailLines")); err == nil && n >= 0 {
		if err := seekToTail(f, n); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if _, err := io.Copy(w, f); err != nil || q.Get("follow") != "true" {
		return
	}
	flusher, _ := w.(http.Flusher)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		if flusher != nil {
			flusher.Flush()
		}
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
		if _, err := io.Copy(w, f); err != nil {
			return
		}
		// A restart starts a new file; following ends with the run it began on, as with
		// the kubelet.
		if now, ok := c.Pod(ns, name); !ok || !sameRun(now, container, path) {
			_, _ = io.Copy(w, f)
			return
		}
	}
}

func sameRun(info PodInfo, container, path string) bool {
	for _, ci := range info.Containers {
		if ci.Name == container {
			return ci.LogPath == path
		}
	}
	return false
}

// seekToTail positions f at the start of its last n lines.
func seekToTail(f *os.File, n int) error {
	data, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	offset := len(data)
	trimmed := bytes.TrimSuffix(data, []byte("\n"))
	for i := 0; i < n; i++ {
		j := bytes.LastIndexByte(trimmed, '\n')
		if j < 0 {
			offset = 0
			break
		}
		trimmed = trimmed[:j]
		offset = j + 1
	}
	if n == 0 {
		offset = len(data)
	}
	_, err = f.Seek(int64(offset), io.SeekStart)
	return err
}
