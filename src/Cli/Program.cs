Console.WriteLine("sageattn");
