#include "meshd/common/event_kinds.hpp"

namespace meshd {

std::string_view to_string(MisbehaviourKind k) {
  switch (k) {
    case MisbehaviourKind::equivocation:
      return "equivocation";
    case MisbehaviourKind::protected_target:
      return "protected_target";
    case MisbehaviourKind::budget_overrun:
      return "budget_overrun";
  }
  return "invalid";
}

}  // namespace meshd
