#!/bin/sh
# Pack dist/NoMoat.app (built on macOS by packaging/build.py) into
# dist/nomoat-<version>-macos-<arch>.dmg: the app next to a link to /Applications, so users drag
# it across. Optional: NOMOAT_CODESIGN_IDENTITY signs the app (Developer ID Application: ...),
# and NOMOAT_NOTARY_PROFILE (a profile saved with `xcrun notarytool store-credentials`)
# notarizes and staples the disk image, so Gatekeeper opens it without a warning.
set -eu
cd "$(dirname "$0")/../.."

APP=dist/NoMoat.app
if [ ! -d "$APP" ]; then
    echo "make_dmg: $APP is missing; build it first with: python3 packaging/build.py" >&2
    exit 1
fi
VERSION=$(python3 -c 'import sys; sys.path.insert(0, "packaging"); import bundle; print(bundle.app_version())')
ARCH=$(uname -m)
DMG="dist/nomoat-$VERSION-macos-$ARCH.dmg"

if [ -n "${NOMOAT_CODESIGN_IDENTITY:-}" ]; then
    codesign --force --deep --options runtime --timestamp \
        --sign "$NOMOAT_CODESIGN_IDENTITY" "$APP"
    codesign --verify --deep --strict "$APP"
fi

STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
cp -R "$APP" "$STAGE/"
ln -s /Applications "$STAGE/Applications"
rm -f "$DMG"
hdiutil create -volname "NoMoat $VERSION" -srcfolder "$STAGE" -fs HFS+ -format UDZO \
    -imagekey zlib-level=9 "$DMG"

if [ -n "${NOMOAT_NOTARY_PROFILE:-}" ]; then
    xcrun notarytool submit "$DMG" --keychain-profile "$NOMOAT_NOTARY_PROFILE" --wait
    xcrun stapler staple "$DMG"
fi
hdiutil verify "$DMG"
echo "make_dmg: built $DMG"
