// Admission's bookkeeping without sockets: slots per endpoint under the cap,
// the FIFO queue and its bound, wake-ups posted to the waiter's executor,
// withdrawal racing a grant, and config changes of the cap and endpoints.
#include "proxy/snapshot/admission.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include <memory>
#include <vector>

using sluice::proxy::Admission;
using sluice::proxy::EndpointState;

namespace {

class AdmissionBook : public ::testing::Test {
protected:
    void SetUp() override {
        for (int i = 0; i < 2; ++i) endpoints.push_back(std::make_shared<EndpointState>());
    }
    std::shared_ptr<Admission::Waiter> waiter() {
        auto w = std::make_shared<Admission::Waiter>();
        w->executor = io.get_executor();
        return w;
    }
    Admission::Outcome take(EndpointState* preferred, const std::shared_ptr<Admission::Waiter>& w,
                            EndpointState*& slot, bool may_queue = true) {
        return admission.acquire(preferred, sluice::proxy::coarse_now_ns(), w, may_queue, slot);
    }
    EndpointState* ep(int i) { return endpoints[static_cast<std::size_t>(i)].get(); }

    boost::asio::io_context io;
    std::vector<std::shared_ptr<EndpointState>> endpoints;
    Admission admission;
};

}  // namespace

TEST_F(AdmissionBook, SlotsGoToThePreferredEndpointThenTheLeastBusyOneWithRoom) {
    admission.configure(2, 0, endpoints);
    EndpointState* slot = nullptr;
    EXPECT_EQ(take(ep(0), waiter(), slot), Admission::Outcome::admitted);
    EXPECT_EQ(slot, ep(0));
    EXPECT_EQ(take(ep(0), waiter(), slot), Admission::Outcome::admitted);
    EXPECT_EQ(slot, ep(0));
    EXPECT_EQ(take(ep(0), waiter(), slot), Admission::Outcome::admitted);  // ep 0 is at the cap
    EXPECT_EQ(slot, ep(1));
    ep(1)->healthy = false;  // an unavailable endpoint takes no slot
    EXPECT_EQ(take(ep(0), waiter(), slot), Admission::Outcome::full);  // queue.size 0
    EXPECT_EQ(ep(0)->admitted, 2u);
    EXPECT_EQ(ep(1)->admitted, 1u);
}

TEST_F(AdmissionBook, WaitersAreAdmittedInArrivalOrderAndWokenOnTheirExecutor) {
    admission.configure(1, 2, {endpoints[0]});
    EndpointState* slot = nullptr;
    ASSERT_EQ(take(ep(0), waiter(), slot), Admission::Outcome::admitted);
    auto first = waiter(), second = waiter();
    EXPECT_EQ(take(ep(0), first, slot), Admission::Outcome::queued);
    EXPECT_EQ(take(ep(0), second, slot), Admission::Outcome::queued);
    EXPECT_EQ(take(ep(0), waiter(), slot), Admission::Outcome::full);  // two may wait
    EXPECT_EQ(admission.depth(), 2u);

    boost::asio::steady_timer timer(io, boost::asio::steady_timer::time_point::max());
    bool woken = false;
    timer.async_wait([&](const boost::system::error_code& ec) { woken = ec == boost::asio::error::operation_aborted; });
    first->timer = &timer;
    admission.release(ep(0));
    EXPECT_TRUE(first->admitted);
    EXPECT_EQ(first->slot, ep(0));
    EXPECT_FALSE(second->admitted);
    EXPECT_EQ(admission.depth(), 1u);
    EXPECT_EQ(ep(0)->admitted, 1u);  // handed on, not given back
    io.run();
    EXPECT_TRUE(woken);
    EXPECT_FALSE(admission.withdraw(first));  // admitted meanwhile: it holds the slot
    EXPECT_TRUE(admission.withdraw(second));  // still waiting: it leaves the queue
    EXPECT_EQ(admission.depth(), 0u);
}

TEST_F(AdmissionBook, NobodyPassesThoseWaiting) {
    admission.configure(1, 5, endpoints);
    EndpointState* slot = nullptr;
    ASSERT_EQ(take(ep(0), waiter(), slot), Admission::Outcome::admitted);
    ASSERT_EQ(take(ep(1), waiter(), slot), Admission::Outcome::admitted);
    auto queued = waiter();
    ASSERT_EQ(take(ep(0), queued, slot), Admission::Outcome::queued);
    admission.forget(ep(1));  // room on ep 1, but nobody woken
    EXPECT_FALSE(queued->admitted);
    // A newcomer does not take that room ahead of the one waiting.
    EXPECT_EQ(take(ep(1), waiter(), slot), Admission::Outcome::queued);
    EXPECT_EQ(take(ep(1), waiter(), slot, false), Admission::Outcome::full);  // a retry never waits
}

TEST_F(AdmissionBook, ACapChangeAdmitsWaitersThatNowFitAndLiftingItAdmitsAllUncounted) {
    admission.configure(1, 10, {endpoints[0]});
    EndpointState* slot = nullptr;
    ASSERT_EQ(take(ep(0), waiter(), slot), Admission::Outcome::admitted);
    std::vector<std::shared_ptr<Admission::Waiter>> waiting;
    for (int i = 0; i < 4; ++i) {
        waiting.push_back(waiter());
        ASSERT_EQ(take(ep(0), waiting.back(), slot), Admission::Outcome::queued);
    }
    admission.configure(3, 10, {endpoints[0]});
    EXPECT_TRUE(waiting[0]->admitted);
    EXPECT_TRUE(waiting[1]->admitted);
    EXPECT_FALSE(waiting[2]->admitted);
    EXPECT_EQ(ep(0)->admitted, 3u);
    admission.configure(0, 10, {endpoints[0]});
    EXPECT_TRUE(waiting[2]->admitted);
    EXPECT_EQ(waiting[2]->slot, nullptr);  // uncounted: released as nothing
    EXPECT_TRUE(waiting[3]->admitted);
    EXPECT_EQ(admission.depth(), 0u);
    EXPECT_EQ(take(ep(0), waiter(), slot), Admission::Outcome::admitted);
    EXPECT_EQ(slot, nullptr);
    EXPECT_EQ(ep(0)->admitted, 3u);
}

TEST_F(AdmissionBook, AnEndpointRemovedByAChangeTakesNoNewSlot) {
    admission.configure(1, 5, endpoints);
    EndpointState* slot = nullptr;
    ASSERT_EQ(take(ep(0), waiter(), slot), Admission::Outcome::admitted);
    admission.configure(1, 5, {endpoints[1]});
    // A request on the older config still prefers ep 0: it goes to ep 1.
    EXPECT_EQ(take(ep(0), waiter(), slot), Admission::Outcome::admitted);
    EXPECT_EQ(slot, ep(1));
    admission.release(ep(0));  // the old request ends: its count goes back
    EXPECT_EQ(ep(0)->admitted, 0u);
}
