"""Helpers shared by the test suites: fake Lambda context, signed API Gateway events, AWS seeding."""
