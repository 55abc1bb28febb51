package session

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/ovpnd/ovpnd/config"
)

// crlSource serves crl-verify's lists to the engine at each handshake. Lists given inline are
// parsed once; a file is re-read when its size or modification time changes, as OpenVPN does
// (tls_ctx_reload_crl), so a CA's new list applies from the next handshake without a restart.
// The engine calls it from its TLS goroutine, so the cache has its own lock.
type crlSource struct {
	path string // "" = fixed lists
	dir  string // crl-verify DIR dir

	mu    sync.Mutex
	lists []*x509.RevocationList
	size  int64
	mtime time.Time
}

func newCRLSource(c *config.CRL) (*crlSource, error) {
	if c == nil {
		return nil, nil
	}
	s := &crlSource{path: c.Path, dir: c.Dir}
	if c.Dir != "" {
		return s, nil
	}
	lists, err := config.DecodeCRLs(c.PEM)
	if err != nil {
		return nil, fmt.Errorf("crl-verify: %w", err)
	}
	s.lists = lists
	if c.Path != "" {
		// The lists parsed with the profile are the file as it was then.
		if st, err := os.Stat(c.Path); err == nil {
			s.size, s.mtime = st.Size(), st.ModTime()
		}
	}
	return s, nil
}

// current returns the lists in force, re-reading the file if it changed.
func (s *crlSource) current() ([]*x509.RevocationList, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.path == "" {
		return s.lists, nil
	}
	st, err := os.Stat(s.path)
	if err != nil {
		// OpenVPN clears its lists when it cannot read the file, so every handshake fails.
		return nil, fmt.Errorf("reading %s: %w", s.path, err)
	}
	if st.Size() == s.size && st.ModTime().Equal(s.mtime) && s.lists != nil {
		return s.lists, nil
	}
	data, err := readCRLFile(s.path)
	if err != nil {
		s.lists = nil
		return nil, err
	}
	lists, err := config.DecodeCRLs(data)
	if err != nil {
		s.lists = nil
		return nil, fmt.Errorf("%s: %w", s.path, err)
	}
	s.lists, s.size, s.mtime = lists, st.Size(), st.ModTime()
	return lists, nil
}

func readCRLFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, config.MaxMaterialSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(data) > config.MaxMaterialSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, config.MaxMaterialSize)
	}
	return data, nil
}

// revoked implements crl-verify DIR dir: a file named by the serial revokes the certificate.
func (s *crlSource) revoked(serial string) (bool, error) {
	_, err := os.Lstat(filepath.Join(s.dir, serial))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, err
}
