"""The patient simulator: cases, the simulator and perturber prompts, simulated turns, episodes, the gradient.

PrMed stage 2 (simulate -> evaluate -> optimise): a policy answers, an OpenAI-compatible model playing the
patient writes the next turn, and the judge scores the policy's turn in context under the same rubric. The
same loop, run offline over perturbation levels, gives the perturbation gradient.
"""
