"""CloudFormation stacks the console owns per project x cluster: templates, plans, changes."""
