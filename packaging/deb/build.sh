#!/bin/sh
# Builds ovpnd_VERSION_amd64.deb with dpkg-deb from a clean staging tree.
# usage: packaging/deb/build.sh OUTDIR   (make deb calls it with bin/)
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
out=$(cd "${1:-$top/bin}" && pwd)
cd "$top"
GO=${GO:-go}
version=$("$top/packaging/deb/version.sh")
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/root
umask 022

# Binaries: statically linked, without cgo, like the `make build` binaries that `make bench`
# measures (docs/architecture.md, "Handshake time"): no dynamic loader, no libc start-up and no
# relocations to apply at every start (a PIE's ~47,000 dirty ~1.1 MB of private memory per
# process), and no shared libraries to keep resident. User and group lookups read
# /etc/passwd and /etc/group (os/user's pure Go code); host names resolve through
# /etc/hosts and the DNS servers in /etc/resolv.conf.
mkdir -p "$root/usr/sbin" "$root/usr/bin" "$root/usr/libexec"
ldflags="-s -w -buildid="
for b in sbin/ovpnd bin/ovpnctl libexec/nm-ovpnd-service; do
	(cd "$top" && CGO_ENABLED=0 "$GO" build -trimpath -ldflags="$ldflags" -o "$root/usr/$b" "./cmd/${b#*/}")
done
# NetworkManager's VPN plugin's auth-dialog is the same program under another name.
ln -s nm-ovpnd-service "$root/usr/libexec/nm-ovpnd-auth-dialog"

inst() { # inst MODE SRC DEST
	mkdir -p "$(dirname "$root/$3")"
	install -m "$1" "$top/$2" "$root/$3"
}
inst 644 systemd/ovpnd.service lib/systemd/system/ovpnd.service
inst 644 systemd/ovpnd@.service lib/systemd/system/ovpnd@.service
inst 644 packaging/net.ovpnd1.conf usr/share/dbus-1/system.d/net.ovpnd1.conf
inst 644 packaging/net.ovpnd1.service usr/share/dbus-1/system-services/net.ovpnd1.service
inst 644 packaging/net.ovpnd1.policy usr/share/polkit-1/actions/net.ovpnd1.policy
inst 644 packaging/nm/nm-ovpnd-service.name usr/lib/NetworkManager/VPN/nm-ovpnd-service.name
inst 644 packaging/nm/nm-ovpnd-service.conf usr/share/dbus-1/system.d/nm-ovpnd-service.conf
inst 644 packaging/completions/ovpnctl.bash usr/share/bash-completion/completions/ovpnctl
inst 644 packaging/completions/_ovpnctl usr/share/zsh/vendor-completions/_ovpnctl
inst 644 packaging/client.conf.example etc/ovpnd/client.conf.example

for m in docs/man/*.[0-9]; do
	sec=${m##*.}
	inst 644 "$m" "usr/share/man/man$sec/$(basename "$m")"
	gzip -9n "$root/usr/share/man/man$sec/$(basename "$m")"
done
doc=usr/share/doc/ovpnd
inst 644 README.md $doc/README.md
for d in docs/*.md; do inst 644 "$d" "$doc/$(basename "$d")"; done
gzip -9n "$root/$doc"/*.md
inst 644 packaging/deb/copyright $doc/copyright
inst 644 packaging/deb/lintian-overrides usr/share/lintian/overrides/ovpnd

# A native package's changelog: one entry for this build, dated like its commit.
date=$(cd "$top" && git log -1 --format=%cD)
commit=$(cd "$top" && git rev-parse HEAD)
cat > "$stage/changelog" <<CHANGELOG
ovpnd ($version) unstable; urgency=medium

  * Built from commit $commit.

 -- ovpnd developers <ovpnd@users.noreply.github.com>  $date
CHANGELOG
install -m 644 "$stage/changelog" "$root/$doc/changelog"
gzip -9n "$root/$doc/changelog"

mkdir -p "$root/DEBIAN"
for s in postinst prerm postrm; do install -m 755 "$top/packaging/deb/$s" "$root/DEBIAN/$s"; done
echo /etc/ovpnd/client.conf.example > "$root/DEBIAN/conffiles"
chmod 644 "$root/DEBIAN/conffiles"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -print | LC_ALL=C sort | sed 's|^\./||' | xargs md5sum) > "$root/DEBIAN/md5sums"
chmod 644 "$root/DEBIAN/md5sums"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@SIZE@/$size/" "$top/packaging/deb/control.in" > "$root/DEBIAN/control"
chmod 644 "$root/DEBIAN/control"

deb=$out/ovpnd_${version}_amd64.deb
SOURCE_DATE_EPOCH=$(cd "$top" && git log -1 --format=%ct) dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
