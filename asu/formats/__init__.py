"""OpenWrt's file formats, as every part reads them: usign keys and signatures,
apk's ADB, the package indexes of opkg and apk, and their version order."""
