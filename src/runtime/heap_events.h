// slabby: what the runtime does with the page heap's events: the circuit
// breaker decides whether a request may take new pages, and failures and
// purges go to the event log. The page heap only calls its hooks
// (heap/page_heap.h: PageHeapHooks); this layer decides.
#pragma once

namespace slabby {

class PageHeap;

// At init, after the breaker and the log are configured.
void install_heap_events(PageHeap& heap);

}  // namespace slabby
