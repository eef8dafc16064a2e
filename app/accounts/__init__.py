"""Users, stakeholder categories, working groups, memberships, roles and invitations."""
