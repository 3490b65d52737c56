// Command go-peer serves the ringwall benchmark app with Go's net/http, as a
// peer for same-run comparisons (benches/src/peers/go.rs builds and runs it).
//
//	POST/PUT/PATCH  echo the request body
//	GET /bytes/N    N bytes of 'x'
//	anything else   200 "Hello, World!" (text/plain)
//
// Deadlines map onto net/http's timeouts:
//
//	ReadHeaderTimeout = header
//	ReadTimeout       = header + body  (net/http's covers the head too)
//	WriteTimeout      = body + write   (net/http's starts when the head is read)
//	IdleTimeout       = idle
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

const maxBytes = 64 << 20

var hello = []byte("Hello, World!")

func app(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == "POST" || r.Method == "PUT" || r.Method == "PATCH":
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBytes))
		if err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		reply(w, "application/octet-stream", body)
	case (r.Method == "GET" || r.Method == "HEAD") && strings.HasPrefix(r.URL.Path, "/bytes/"):
		n, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/bytes/"))
		if err != nil || n < 0 || n > maxBytes {
			http.Error(w, "bad byte count", http.StatusBadRequest)
			return
		}
		reply(w, "application/octet-stream", bytes.Repeat([]byte{'x'}, n))
	default:
		reply(w, "text/plain", hello)
	}
}

func reply(w http.ResponseWriter, contentType string, body []byte) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on")
	workers := flag.Int("workers", runtime.NumCPU(), "GOMAXPROCS")
	header := flag.Duration("header-timeout", 2*time.Second, "time for a request head to arrive")
	body := flag.Duration("body-timeout", 10*time.Second, "time for an announced body to arrive")
	idle := flag.Duration("idle-timeout", 60*time.Second, "time a keep-alive connection may sit idle")
	write := flag.Duration("write-timeout", 10*time.Second, "time for a response to leave")
	flag.Parse()
	runtime.GOMAXPROCS(*workers)

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "go-peer: %v\n", err)
		os.Exit(1)
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(app),
		ReadHeaderTimeout: *header,
		ReadTimeout:       *header + *body,
		WriteTimeout:      *body + *write,
		IdleTimeout:       *idle,
		ErrorLog:          log.New(os.Stderr, "go-peer: ", 0),
	}
	fmt.Printf("go-peer listening on %s GOMAXPROCS=%d header=%v body=%v idle=%v write=%v\n",
		ln.Addr(), runtime.GOMAXPROCS(0), *header, *body, *idle, *write)
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintf(os.Stderr, "go-peer: %v\n", err)
		os.Exit(1)
	}
}
