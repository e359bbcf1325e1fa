"""The shower alone vs the shower with 3 orders of Lambda derivatives (events/s; the ratio is the cost of
the derivatives), and one step of a Lambda fit (moved thrust + W1 + gradient)."""
import torch

from fastrsa.shower import generate

N_EVENTS = 20000


class Shower:
    params = [0, 3]
    param_names = ["orders"]
    timeout = 600

    def setup(self, orders):
        torch.set_num_threads(2)
        generate(100, 0.4, orders=orders)      # warm-up (one-off set-up)

    def time_generate(self, orders):
        generate(N_EVENTS, 0.4, orders=orders)


class LambdaFitStep:
    timeout = 600

    def setup(self):
        from fastrsa.fit.shower import ShowerProblem
        self.problem = ShowerProblem(generate(5000, 0.4, seed=1), generate(5000, 0.45, seed=2), "thrust")

    def time_loss_and_grad(self):
        self.problem.loss_and_grad(torch.tensor([[0.42]], dtype=torch.float64))
