// Deliberately violates the sans-I/O rule with nothing but the drivers' clock header:
// sans_io_check must reject this tree too.
#include "meshd/common/clock.hpp"
