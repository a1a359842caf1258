// Compiled by the test sdk_is_apart with nothing but libardkit_sdk's usage requirements, as every
// plugin is: it must fail to find the host header, so a contract source or a plugin that includes
// one fails to build instead of tying plugins to the host's internals.
#include "ardkit/host/config.hpp"
