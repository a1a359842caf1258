#pragma once
// Everything is built with -fvisibility=hidden; the public API of libardkit_sdk is marked here.
#define ARDKIT_API __attribute__((visibility("default")))
