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

# Binaries: dynamically linked PIE with full RELRO (Debian's hardening), no build paths.
mkdir -p "$root/usr/sbin" "$root/usr/bin"
ldflags="-s -w -buildid= -linkmode=external -extldflags=-Wl,-z,relro,-z,now"
(cd "$top" && CGO_ENABLED=1 "$GO" build -trimpath -buildmode=pie -ldflags="$ldflags" -o "$root/usr/sbin/ovpnd" ./cmd/ovpnd)
(cd "$top" && CGO_ENABLED=1 "$GO" build -trimpath -buildmode=pie -ldflags="$ldflags" -o "$root/usr/bin/ovpnctl" ./cmd/ovpnctl)
# NetworkManager's VPN plugin; its auth-dialog is the same program under another name.
mkdir -p "$root/usr/libexec"
(cd "$top" && CGO_ENABLED=1 "$GO" build -trimpath -buildmode=pie -ldflags="$ldflags" -o "$root/usr/libexec/nm-ovpnd-service" ./cmd/nm-ovpnd-service)
ln -s nm-ovpnd-service "$root/usr/libexec/nm-ovpnd-auth-dialog"
# The libc version the binaries need, as dpkg-shlibdeps computes it.
mkdir -p "$stage/debian"
printf 'Source: ovpnd\n\nPackage: ovpnd\nArchitecture: amd64\n' > "$stage/debian/control"
shlibs=$(cd "$stage" && dpkg-shlibdeps -O root/usr/sbin/ovpnd root/usr/bin/ovpnctl root/usr/libexec/nm-ovpnd-service 2>/dev/null | sed -n 's/^shlibs:Depends=//p')

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
sed -e "s/@VERSION@/$version/" -e "s/@SIZE@/$size/" -e "s/@SHLIBS@/$shlibs/" "$top/packaging/deb/control.in" > "$root/DEBIAN/control"
chmod 644 "$root/DEBIAN/control"

deb=$out/ovpnd_${version}_amd64.deb
SOURCE_DATE_EPOCH=$(cd "$top" && git log -1 --format=%ct) dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
